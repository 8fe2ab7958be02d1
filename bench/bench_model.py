"""Time PyMAF's CPU forward pass, and the share the mesh-alignment feedback loop adds to it.

    python3 bench/bench_model.py --batch_sizes 1 32 --repeats 5

"backbone" is the ResNet-50 plus the three deconvolution stages alone; "full" is the whole forward
(inference mode, eval, fp32). The loop overhead is full / backbone - 1.
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


def _median_time(fn, repeats: int) -> float:
    for _ in range(3):  # warm-up: oneDNN builds its kernels on the first calls of each shape
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 32], help='batch sizes to time')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per setting (median reported)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = pymaf_net(pretrained=False).eval()

    def backbone(x):
        feat, _ = model.feature_extractor(x)
        return model.deconv_layers(feat)

    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    print('| batch | backbone+deconv ms | full forward ms | loop overhead | images/s |')
    print('|---|---|---|---|---|')
    for batch in args.batch_sizes:
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            t_backbone = _median_time(lambda: backbone(x), args.repeats)
            t_full = _median_time(lambda: model(x), args.repeats)
        print(f'| {batch} | {t_backbone * 1e3:.1f} | {t_full * 1e3:.1f} | {100 * (t_full / t_backbone - 1):.1f}% '
              f'| {batch / t_full:.1f} |')


if __name__ == '__main__':
    main()
