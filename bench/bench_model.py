"""Time PyMAF's CPU forward pass, and the share the mesh-alignment feedback loop adds to it.

    python3 bench/bench_model.py --batch_sizes 1 32 --repeats 10 --threads 2

"backbone" is the ResNet-50 plus the three deconvolution stages alone; "loop" is the forward without the
auxiliary IUV head (``model(x, iuv=False)``, what evaluation and the demo run): the backbone plus the
mesh-alignment feedback loop; "full" is the whole forward as the original runs it in eval mode, IUV head
included. All in inference mode, eval, fp32. The three are timed in turn, one call each per repeat, so that
load from other processes hits them alike; the table gives the median of each, the loop overhead
median(loop) / median(backbone) - 1 and the full overhead median(full) / median(backbone) - 1.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import pymaf_net  # noqa: E402


def _elapsed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns: list, repeats: int, warmup: int = 3) -> list[float]:
    """Median seconds per call of each function in ``fns``, called in turn ``repeats`` times."""
    for _ in range(warmup):  # oneDNN builds its kernels on the first calls of each shape
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, times):
            samples.append(_elapsed(fn))
    return [statistics.median(samples) for samples in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 32], help='batch sizes to time')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per setting (median reported)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = pymaf_net(pretrained=False).eval()

    def backbone(x):
        feat, _ = model.feature_extractor(x)
        return model.deconv_layers(feat)

    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    print('| batch | backbone+deconv ms | without IUV head ms | full forward ms | loop overhead | full overhead '
          '| images/s (without IUV / full) |')
    print('|---|---|---|---|---|---|---|')
    for batch in args.batch_sizes:
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            t_backbone, t_loop, t_full = interleaved_medians(
                [lambda: backbone(x), lambda: model(x, iuv=False), lambda: model(x)], args.repeats)
        print(f'| {batch} | {t_backbone * 1e3:.1f} | {t_loop * 1e3:.1f} | {t_full * 1e3:.1f} '
              f'| {100 * (t_loop / t_backbone - 1):.1f}% | {100 * (t_full / t_backbone - 1):.1f}% '
              f'| {batch / t_loop:.1f} / {batch / t_full:.1f} |')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_model.py'))
