"""Network inference throughput of each backend and precision against PyTorch fp32, measured in one run.

    python3 bench/bench_inference.py                              # ResNet-50 PyMAF and the demo weights
    python3 bench/bench_inference.py --models r50 --batch_sizes 1 32 --repeats 5 --threads 2

For each network (``r50``: the released architecture, untrained weights with a fixed seed; ``demo``: the
built-in demo weights) and batch size, times the engines of core/inference/backends.py on the same person
crops (people of the stand-in body rendered by datasets/synthetic.py), alternately, with the same number of
threads: torch fp32 (the network as it is: the reference), torch fp32 lean and torch bf16 (where the device
computes bf16 natively; both through core/inference/lean.py, as `--backend torch` runs them), onnx fp32
(exported and cached as the demo does). Prints images/s (the median of ``--repeats`` calls), the ratio to
torch fp32 (the median of the per-round ratios, with their range: each round times every engine once, back
to back, so a load that comes and goes on the machine moves both sides of a ratio alike) and the largest
output difference from torch fp32 over vertices, joints (3D and 2D) and cameras. See docs/speed.md; the
OpenMP wait policy in effect is printed because it decides how PyTorch copes with a busy machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.openmp import prefer_passive_wait  # noqa: E402

prefer_passive_wait()  # before torch is imported, as the project's scripts (docs/speed.md)

REPO = Path(__file__).resolve().parents[1]
COMPARED = ('verts', 'kp_3d', 'kp_2d', 'pred_cam')


def build(name: str, device):
    """(model, checkpoint path or None, description) of a benchmarked network."""
    import torch

    from core import path_config
    from core.inference.predictor import PyMAFPredictor

    if name == 'r50':
        torch.manual_seed(0)  # the same untrained weights every run, so the ONNX cache is reused
        model = PyMAFPredictor.from_checkpoint(None, device).model
        return model, None, 'ResNet-50 PyMAF (released architecture, untrained)'
    checkpoint = sorted(Path(path_config.DEMO_WEIGHTS_DIR).glob('*.pt'))[0]
    return PyMAFPredictor.from_checkpoint(checkpoint, device).model, checkpoint, f'demo weights {checkpoint.name}'


def person_crops(count: int):
    """(count, 3, 224, 224) normalised crops of rendered people (outputs of noise images are not representative:
    bf16 drifts much further on them)."""
    import tempfile

    import torch

    from datasets import synthetic
    from datasets.base_dataset import BaseDataset

    with tempfile.TemporaryDirectory() as tmp:
        npz = synthetic.generate_dataset(tmp, num_samples=count, seed=0, img_width=224, img_height=224)
        dataset = BaseDataset('3dpw', npz_path=npz, img_dir=tmp)
        return torch.stack([dataset[i]['img'] for i in range(count)])


def engines(model, checkpoint, device) -> dict:
    """Name -> backend of every engine that runs natively here; ``torch fp32`` is the network as it is (the
    reference), the others are what `core.inference.backends.make_backend` builds."""
    from core.inference.backends import TorchBackend, cached_onnx_backend, onnx_available
    from utils.precision import native_bf16

    found = {'torch fp32': TorchBackend(model, device, 'fp32'),
             'torch fp32 lean': TorchBackend(model, device, 'fp32', lean=True)}
    if native_bf16(device):
        found['torch bf16'] = TorchBackend(model, device, 'bf16', lean=True)
    if device.type == 'cpu' and onnx_available():
        found['onnx fp32'] = cached_onnx_backend(model, checkpoint)
    return found


def measure(found: dict, images, repeats: int) -> dict[str, dict[str, float]]:
    """Time every engine of ``found`` (the first is the reference) on ``images``, round by round.

    Returns:
        engine -> ``rate`` (images/s, median call), ``ratio`` (median per-round speed-up over the reference),
        ``ratio_min``, ``ratio_max`` and ``diff`` (largest output difference from the reference over `COMPARED`).
    """
    from core.inference.backends import max_abs_difference

    names = list(found)
    reference = found[names[0]](images)
    diffs = {}
    for engine, run in found.items():
        out = run(images)  # warm-up; also the outputs compared
        diffs[engine] = max(max_abs_difference({k: out[k] for k in COMPARED},
                                               {k: reference[k] for k in COMPARED}).values())
    times = {engine: [] for engine in found}
    for _ in range(repeats):
        for engine, run in found.items():
            start = time.perf_counter()
            run(images)
            times[engine].append(time.perf_counter() - start)
    results = {}
    for engine in names:
        ratios = [ref / own for ref, own in zip(times[names[0]], times[engine])]
        results[engine] = {'rate': len(images) / statistics.median(times[engine]), 'ratio': statistics.median(ratios),
                           'ratio_min': min(ratios), 'ratio_max': max(ratios), 'diff': diffs[engine]}
    return results


def machine_line(threads: int, device) -> str:
    """CPU, threads, library versions, bf16 flags and the OpenMP wait policy, on one line."""
    import os

    import onnxruntime as ort
    import torch

    from utils.openmp import wait_policy
    from utils.precision import cpu_flags

    cpuinfo = Path('/proc/cpuinfo')
    cpu = next((line.split(':', 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith('model name')), 'unknown CPU') if cpuinfo.is_file() else 'unknown CPU'
    bf16_flags = sorted(cpu_flags() & {'avx512_bf16', 'amx_bf16'})
    return (f'{cpu}, {threads} threads, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} '
            f'kernels, bf16 flags: {", ".join(bf16_flags) or "none"}), onnxruntime {ort.__version__}, device {device}, '
            f'OpenMP wait policy {wait_policy()}, '
            f'load average {" ".join(f"{x:.1f}" for x in os.getloadavg())}')


def network_table(models: list[str], batch_sizes: list[int], repeats: int, device) -> list[str]:
    """Markdown rows (header first) of every engine against torch fp32 for each network and batch size, printed
    as they come."""
    rows = ['| network | batch | engine | images/s | vs torch fp32 (median, range) | max diff |',
            '|---|---|---|---|---|---|']
    print('\n'.join(rows), flush=True)
    all_images = person_crops(max(batch_sizes))
    for name in models:
        model, checkpoint, desc = build(name, device)
        found = engines(model, checkpoint, device)
        for batch in batch_sizes:
            results = measure(found, all_images[:batch], repeats)
            for engine, r in results.items():
                rows.append(f'| {desc if engine == "torch fp32" else ""} | {batch} | {engine} | {r["rate"]:.1f} | '
                            f'{r["ratio"]:.2f}x ({r["ratio_min"]:.2f}-{r["ratio_max"]:.2f}) | {r["diff"]:.1e} |')
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=['r50', 'demo'], choices=['r50', 'demo'])
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per batch size (every engine once each)')
    parser.add_argument('--threads', type=int, default=2, help='torch and ONNX Runtime intra-op threads')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    import logging

    import torch

    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(machine_line(args.threads, device))
    network_table(args.models, args.batch_sizes, args.repeats, device)


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_inference.py'))
