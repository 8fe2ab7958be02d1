"""One command for the speed of inference: the demo per stage and end to end with each inference backend and
precision, and the network alone against PyTorch fp32, side by side in one run.

    python3 bench/bench_speed.py                                   # dancer.mp4, every combination here
    python3 bench/bench_speed.py --max_frames 30 --combos torch:fp32 auto:auto
    python3 bench/bench_speed.py --skip_demo --models r50 demo --repeats 9
    python3 bench/bench_speed.py --skip_network -- --no_render     # extra demo.py flags after --

(a) For each ``backend:precision`` combination (default: every one this machine runs natively, then
``auto:auto``), the demo runs on the clip through ``demo.run`` and the table gives frames/s of every stage its
summary reports (seconds are each stage's own working time; pipelined stages overlap) and end to end (frames
/ total seconds, model loading included). An untimed short run first fills the ONNX cache and the file
caches, so no combination pays for the one-off export.

(b) Images/s of the network at each batch size per engine against PyTorch fp32, with the ratio (median and
range over rounds) and the largest output difference: `bench.bench_inference`'s measurement.

The OpenMP wait policy is set to PASSIVE as the project's scripts set it (`utils.openmp`; export
``OMP_WAIT_POLICY=ACTIVE`` to see PyTorch with spinning threads) and printed with the load average: the
machine may be shared, so only ratios within one run mean much. See docs/speed.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from utils.openmp import prefer_passive_wait  # noqa: E402

prefer_passive_wait()  # before torch is imported (docs/speed.md)

DANCER = REPO.parent / 'shared' / 'media' / 'dancer.mp4'


def available_combos() -> list[str]:
    """``backend:precision`` of every engine that runs natively on this CPU, then ``auto:auto``."""
    import torch

    from core.inference.backends import onnx_available
    from utils.precision import native_bf16

    combos = ['torch:fp32']
    if native_bf16(torch.device('cpu')):
        combos.append('torch:bf16')
    if onnx_available():
        combos.append('onnx:fp32')
    return combos + ['auto:auto']


def run_demo(vid_file: str, combo: str, max_frames: int | None, extra: list[str]) -> dict:
    """The demo's summary for one ``backend:precision`` (outputs into a temporary folder)."""
    import demo

    backend, precision = combo.split(':')
    with tempfile.TemporaryDirectory() as out:
        argv = ['--vid_file', vid_file, '--output_folder', out, '--device', 'cpu', '--backend', backend,
                '--precision', precision]
        if max_frames:
            argv += ['--max_frames', str(max_frames)]
        return demo.run(demo.build_parser().parse_args(argv + extra), log=lambda message: None)


def demo_table(summaries: dict[str, dict]) -> list[str]:
    """Markdown rows: frames/s per stage (rows) and combination (columns), then end to end."""
    stages = []
    for summary in summaries.values():
        stages += [stage for stage in summary['seconds'] if stage not in stages]
    combos = list(summaries)
    rows = ['| stage, frames/s | ' + ' | '.join(combos) + ' |', '|---|' + '---|' * len(combos)]

    def rate(frames: int, seconds: float | None) -> str:
        return f'{frames / seconds:.1f}' if seconds else '-'

    for stage in stages:
        rows.append(f'| {stage} | ' + ' | '.join(rate(s['frames'], s['seconds'].get(stage))
                                                for s in summaries.values()) + ' |')
    rows.append('| **end to end** | ' + ' | '.join(f'**{rate(s["frames"], s["total_seconds"])}**'
                                                  for s in summaries.values()) + ' |')
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--vid_file', default=str(DANCER), help='clip for the demo (default: the dancer clip)')
    parser.add_argument('--max_frames', type=int, default=None, help='demo: only the first N frames')
    parser.add_argument('--combos', nargs='+', default=None,
                        help='backend:precision combinations for the demo (default: all native here, then auto:auto)')
    parser.add_argument('--models', nargs='+', default=['demo', 'r50'], choices=['r50', 'demo'],
                        help='networks for the network table (demo weights, ResNet-50 PyMAF)')
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--repeats', type=int, default=5, help='network: timed rounds per batch size')
    parser.add_argument('--threads', type=int, default=2, help='network: torch and ONNX Runtime threads')
    parser.add_argument('--skip_demo', action='store_true')
    parser.add_argument('--skip_network', action='store_true')
    parser.add_argument('demo_args', nargs='*', help='extra demo.py flags, after --')
    args = parser.parse_args()

    import logging

    import torch

    from bench.bench_inference import machine_line, network_table

    logging.basicConfig(level=logging.ERROR, format='%(levelname)s %(name)s: %(message)s')
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads, torch.device('cpu')), flush=True)
    if not args.skip_demo:
        combos = args.combos or available_combos()
        run_demo(args.vid_file, 'auto:auto' if 'onnx:fp32' not in combos else 'onnx:fp32', 2, args.demo_args)
        summaries = {}
        for combo in combos:
            summaries[combo] = run_demo(args.vid_file, combo, args.max_frames, args.demo_args)
            torch.set_num_threads(args.threads)  # as the demo found it, whatever it did
            first = summaries[combo]
            print(f'demo {combo}: {first["frames"]} frames, {first["people"]} people, '
                  f'{first["frames"] / first["total_seconds"]:.2f} frames/s end to end', flush=True)
        print(f'\n{Path(args.vid_file).name}, {next(iter(summaries.values()))["frames"]} frames:')
        print('\n'.join(demo_table(summaries)), flush=True)
    if not args.skip_network:
        print('\nnetwork alone:')
        network_table(args.models, args.batch_sizes, args.repeats, torch.device('cpu'))


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_speed.py'))
