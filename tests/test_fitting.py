"""The keypoint fit's optimiser (core/fitting.py)."""
import torch

from core.fitting import Adam


def test_adam_makes_torchs_default_adam_updates():
    torch.manual_seed(0)
    start = [torch.randn(5, 72), torch.randn(5, 10), torch.randn(5, 3)]
    ours = [t.clone().requires_grad_(True) for t in start]
    theirs = [t.clone().requires_grad_(True) for t in start]
    mine, reference = Adam(ours, lr=0.02), torch.optim.Adam(theirs, lr=0.02)
    for step in range(30):
        for params, opt in ((ours, mine), (theirs, reference)):
            opt.zero_grad()
            loss = sum(((p - 0.1 * step) ** 2 * (1 + k)).sum() + p.sin().sum() for k, p in enumerate(params))
            loss.backward()
            opt.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours[0], start[0])
