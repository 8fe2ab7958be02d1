"""The PyMAF network as an ONNX model: crops in, the final feedback step's SMPL estimate and mesh out.

The graph holds the whole forward pass without the auxiliary IUV head, body model included, with a dynamic
batch dimension; ONNX Runtime (or TensorRT, OpenVINO, ...) runs it without PyTorch. See docs/export.md.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from core import constants

logger = logging.getLogger(__name__)

INPUT_NAME = 'images'
# Output name -> description (shapes with B the batch).
OUTPUTS = {
    'pose_aa': '(B, 72) SMPL pose, axis-angle in radians, global orientation first (camera frame)',
    'rotmat': '(B, 24, 3, 3) the same pose as rotation matrices',
    'betas': '(B, 10) shape coefficients',
    'pred_cam': '(B, 3) weak-perspective crop camera [s, tx, ty]',
    'verts': '(B, 6890, 3) mesh vertices in metres, body frame (rotated, not translated)',
    'joints3d': '(B, 49, 3) the 49 joints (25 OpenPose order, then 24 ground-truth joints), metres',
    'kp_2d': '(B, 49, 2) those joints projected into the crop, in [-1, 1]',
}
DEFAULT_OPSET = 18


class FinalEstimate(nn.Module):
    """Wraps PyMAF: ``forward(images (B, 3, 224, 224))`` returns the tensors of `OUTPUTS`, in that order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        final = self.model(images, iuv=False)[0]['smpl_out'][-1]
        return (final['theta'][:, 13:85], final['rotmat'], final['pred_shape'], final['pred_cam'], final['verts'],
                final['kp_3d'], final['kp_2d'])


def _require(module: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f'{purpose} needs the {module!r} package: pip install onnx onnxscript onnxruntime '
                          '(all in requirements.txt)') from err


EXPORTERS = ('auto', 'torchscript', 'dynamo')


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, metadata: dict | None = None,
                exporter: str = 'auto') -> Path:
    """Export ``model`` (PyMAF, or a network with its output contract, any device) to ``path``.

    Args:
        model: the network, in eval mode after this call.
        path: the .onnx file to write (its folder is created).
        opset: ONNX opset version.
        metadata: extra string entries for the model's metadata (e.g. which weights and body model).
        exporter: 'torchscript' (torch.onnx's tracing exporter: a few seconds for the demo weights),
            'dynamo' (torch.export's exporter: about ten times slower, the same graph up to float rounding) or
            'auto' (the tracing exporter while this torch has it, else dynamo).

    Returns:
        The path written.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {", ".join(EXPORTERS)}, got {exporter!r}')
    _require('onnx', 'ONNX export')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    device = next(model.parameters()).device
    wrapper = FinalEstimate(model).eval()
    example = torch.zeros(2, 3, constants.IMG_RES, constants.IMG_RES, device=device)
    exporter_log = logging.getLogger('torch.onnx')
    level = exporter_log.level
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # The extractors' per-call attributes (im_feat, cam: the original's API), torchvision's absence, the
        # tracer's notes on Python values it records as constants (shapes of buffers, loop counts) and the
        # tracing exporter's deprecation draw warnings that do not affect the graph.
        warnings.filterwarnings('ignore', message='The tensor attributes', category=UserWarning)
        warnings.filterwarnings('ignore', message='.*LeafSpec', category=FutureWarning)
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='You are using the legacy TorchScript', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='The feature will be removed', category=DeprecationWarning)
        exporter_log.setLevel(logging.ERROR)
        try:
            wrapper(example)  # fills the caches of derived buffers, which the exporters take as constants
            if exporter in ('auto', 'torchscript'):
                try:
                    _export_traced(wrapper, example, path, opset)
                except Exception as err:  # a torch without the tracing exporter, or an operation it lacks
                    if exporter == 'torchscript':
                        raise
                    logger.info('tracing exporter failed (%s: %s); using torch.export', type(err).__name__,
                                str(err).splitlines()[0][:200] if str(err) else '')
                    exporter = 'dynamo'
            if exporter == 'dynamo':
                _require('onnxscript', 'ONNX export with torch.export')
                program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=opset,
                                            input_names=[INPUT_NAME], output_names=list(OUTPUTS),
                                            dynamic_shapes={'images': {0: torch.export.Dim('batch', min=1)}},
                                            verbose=False)
                program.save(str(path))
        finally:
            exporter_log.setLevel(level)
    _write_metadata(path, metadata or {})
    logger.info('exported %s in %.1f s', path, time.perf_counter() - start)
    return path


def _export_traced(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """torch.onnx's tracing exporter, the batch dimension dynamic; constants folded."""
    torch.onnx.export(wrapper, (example,), str(path), dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=list(OUTPUTS), do_constant_folding=True,
                      dynamic_axes={INPUT_NAME: {0: 'batch'}})


def _write_metadata(path: Path, extra: dict) -> None:
    onnx = _require('onnx', 'ONNX export')
    proto = onnx.load(str(path), load_external_data=False)
    entries = {
        'input': (f'{INPUT_NAME}: (B, 3, {constants.IMG_RES}, {constants.IMG_RES}) float32 RGB crops in [0, 1], '
                  f'normalised with ImageNet mean {constants.IMG_NORM_MEAN} and std {constants.IMG_NORM_STD}'),
        'outputs': json.dumps(OUTPUTS),
        'camera': (f'crop camera: perspective with focal length {constants.FOCAL_LENGTH} px over the '
                   f'{constants.IMG_RES} px crop, translation [tx, ty, 2 * focal / ({constants.IMG_RES} * s)]'),
        **{str(k): str(v) for k, v in extra.items()},
    }
    del proto.metadata_props[:]
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def onnx_session(path: str | Path):
    """An ONNX Runtime CPU session of an exported model (load once, run many times)."""
    ort = _require('onnxruntime', 'running the ONNX model')
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def run_onnx(session, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run an `onnx_session`: images (B, 3, 224, 224) -> the `OUTPUTS` arrays by name."""
    values = session.run(None, {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})
    return dict(zip([out.name for out in session.get_outputs()], values))


def compare_with_torch(path: str | Path, model: nn.Module, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0
                       ) -> dict[str, float]:
    """Largest absolute difference per output between ONNX Runtime and PyTorch on random crops."""
    gen = torch.Generator().manual_seed(seed)
    wrapper = FinalEstimate(model.float().eval())
    device = next(model.parameters()).device
    worst = dict.fromkeys(OUTPUTS, 0.0)
    session = onnx_session(path)
    for batch in batch_sizes:
        images = torch.randn(batch, 3, constants.IMG_RES, constants.IMG_RES, generator=gen)
        with torch.no_grad():
            expected = wrapper(images.to(device))
        got = run_onnx(session, images.numpy())
        for name, ref in zip(OUTPUTS, expected):
            worst[name] = max(worst[name], float(np.abs(got[name] - ref.cpu().numpy()).max()))
    return worst
