"""Checks shared by the model tests."""
import torch

# smplx's per-model pose/shape parameters: in the checkpoint, never used by the forward pass.
UNUSED_SMPL_PARAMS = ('.smpl.betas', '.smpl.global_orient', '.smpl.body_pose')


def layers_without_gradient(model: torch.nn.Module, batch_size: int) -> list[str]:
    """Train-mode forward and backward through every output; names of parameters left without gradient."""
    model.train()
    preds, _ = model(torch.randn(batch_size, 3, 224, 224))
    for out in preds['smpl_out']:
        assert all(torch.isfinite(v).all() for v in out.values())
    loss = sum(out['verts'].mean() + out['pred_cam'].sum() for out in preds['smpl_out'][1:])
    loss = loss + sum(v.mean() for v in preds['dp_out'][0].values())
    model.zero_grad()
    loss.backward()
    return [name for name, p in model.named_parameters()
            if not name.endswith(UNUSED_SMPL_PARAMS) and (p.grad is None or p.grad.abs().sum() == 0)]
