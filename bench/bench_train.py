"""Training throughput: samples per second, and the shares of step time spent loading data and rendering the
DensePose labels, for fp32 and bf16 (CPU by default; on a GPU with --device cuda).

    python3 bench/bench_train.py                                    # ResNet-50 PyMAF, batch 8, CPU
    python3 bench/bench_train.py --cfg_file configs/demo_weights_lite.yaml --batch_size 32
    python3 bench/bench_train.py --device cuda --batch_size 64 --amp none bf16 fp16
    python3 bench/bench_train.py --amp bf16 --misc TRAIN.CHANNELS_LAST True

Runs train.py's Trainer on a synthetic set it renders into a temporary folder; the first --warmup steps are
not timed. Prints one line per precision (with the dtype the forward pass really ran in: bf16 falls back to
fp32 where the device lacks native bf16, see utils/precision.py), the CPU's bf16 flags and a JSON summary.
--force_bf16 runs bf16 autocast even there, to measure what the fallback avoids; with
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 in the environment a CPU with AVX512-BF16 behaves as an
AVX2-only one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfg_file', default=None, help='model config (default: the paper\'s ResNet-50 PyMAF)')
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--steps', type=int, default=6, help='timed steps per precision')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--amp', nargs='+', default=['none', 'bf16'], help='precisions to time')
    parser.add_argument('--workers', type=int, default=0, help='data-loader workers')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--misc', nargs='*', default=[], help='extra config overrides, KEY VALUE pairs, as train.py')
    parser.add_argument('--force_bf16', action='store_true',
                        help='bf16 autocast for --amp bf16 even where the device has no native bf16 (measurement only)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace, amp: str, npz: str, img_dir: str) -> dict:
    from core import cfgs
    from core.train_options import parse_train_args
    from core.trainer import Trainer
    from utils.train_utils import init_distributed

    steps = args.warmup + args.steps
    argv = ['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', npz, '--train_img_dir', img_dir,
            '--eval_dataset', 'none', '--device', args.device]
    if args.cfg_file:
        argv += ['--cfg_file', args.cfg_file]
    argv += ['--misc', 'TRAIN.BATCH_SIZE', str(args.batch_size), 'TRAIN.NUM_WORKERS', str(args.workers),
             'TRAIN.AMP', amp, 'SEED_VALUE', '0', 'TRAIN.PIN_MEMORY', 'False', *args.misc]
    train_args = parse_train_args(argv)
    cfg = cfgs.load_cfg(train_args.cfg_file, train_args.misc)
    trainer = Trainer(train_args, cfg, init_distributed(**train_args.distributed_setup()), log_dir=None)
    if amp == 'bf16' and args.force_bf16:
        import torch

        trainer.amp_dtype = torch.bfloat16
    trainer.sampler.set_epoch(0)
    loader = iter(trainer.train_loader)
    timings = {'data_s': 0.0, 'iuv_render_s': 0.0, 'step_s': 0.0}
    for step in range(steps):
        trainer.timings.clear()
        start = time.perf_counter()
        batch = next(loader)
        data = time.perf_counter() - start
        trainer.train_step(batch)
        if args.device.startswith('cuda'):
            import torch

            torch.cuda.synchronize()
        total = time.perf_counter() - start
        if step >= args.warmup:
            timings['data_s'] += data
            timings['iuv_render_s'] += trainer.timings['iuv_render_s']
            timings['step_s'] += total
    samples = args.steps * args.batch_size
    return {'amp': amp, 'dtype': str(trainer.amp_dtype or 'torch.float32').removeprefix('torch.'),
            'batch_size': args.batch_size, 'samples_per_s': samples / timings['step_s'],
            'step_ms': 1000 * timings['step_s'] / args.steps,
            'data_share': timings['data_s'] / timings['step_s'],
            'iuv_render_share': timings['iuv_render_s'] / timings['step_s']}


def main(args: argparse.Namespace) -> list[dict]:
    import torch

    from datasets.synthetic import generate_dataset
    from utils.precision import CPU_BF16_FLAGS, cpu_flags, native_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    needed = args.batch_size * (args.warmup + args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        npz = generate_dataset(tmp, num_samples=needed, seed=0, img_width=256, img_height=256)
        results = []
        for amp in args.amp:
            res = run(args, amp, npz, tmp)
            results.append(res)
            print(f'{amp:5s} ({res["dtype"]}) batch {res["batch_size"]}: {res["samples_per_s"]:.2f} samples/s, '
                  f'step {res["step_ms"]:.0f} ms, '
                  f'data loading {100 * res["data_share"]:.1f} %, IUV rendering {100 * res["iuv_render_share"]:.1f} %')
    bf16_flags = sorted(cpu_flags() & set(CPU_BF16_FLAGS))
    print(f'native bf16 on {args.device}: {native_bf16(torch.device(args.device))} (CPU bf16 flags: '
          f'{", ".join(bf16_flags) or "none"}; ONEDNN_MAX_CPU_ISA={os.environ.get("ONEDNN_MAX_CPU_ISA", "-")}, '
          f'ATEN_CPU_CAPABILITY={os.environ.get("ATEN_CPU_CAPABILITY", "-")})')
    print(json.dumps({'device': args.device, 'threads': torch.get_num_threads(), 'cfg_file': args.cfg_file,
                      'cpu_count': os.cpu_count(), 'cpu_bf16_flags': bf16_flags,
                      'torch_cpu_capability': torch.backends.cpu.get_cpu_capability(), 'results': results}))
    return results


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(parse_args()), prog='bench_train.py'))
