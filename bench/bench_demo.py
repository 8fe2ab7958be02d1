"""Frames per second per stage of the demo (detection+tracking, regression, saving, rendering).

Runs the whole demo on a video at its native size (default: the shared dancer clip) into a temporary
folder and prints the per-stage figures. Model loading is excluded from the stages but included in
the total.

    python bench/bench_demo.py
    python bench/bench_demo.py --max_frames 30 --device cuda
    python bench/bench_demo.py --vid_file clip.mp4 -- --sideview --model_batch_size 16
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import demo  # noqa: E402

DANCER = REPO.parent / 'shared' / 'media' / 'dancer.mp4'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--vid_file', default=str(DANCER))
    p.add_argument('--max_frames', type=int, default=None)
    p.add_argument('--device', default='auto')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('demo_args', nargs='*', help='extra demo.py flags, after --')
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        argv = ['--vid_file', args.vid_file, '--output_folder', out, '--device', args.device, '--no_frames']
        if args.max_frames:
            argv += ['--max_frames', str(args.max_frames)]
        demo_args = demo.build_parser().parse_args(argv + args.demo_args)
        summary = demo.run(demo_args, log=lambda msg: None)
    print(f'# demo benchmark: {Path(args.vid_file).name}, {summary["frames"]} frames, {summary["people"]} people; '
          f'{platform.processor() or platform.machine()}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, device {summary["device"]}')
    print(f'{"stage":<22s} {"seconds":>9s} {"frames/s":>9s}')
    for stage, sec in summary['seconds'].items():
        print(f'{stage:<22s} {sec:9.2f} {summary["frames"] / sec if sec > 0 else float("nan"):9.2f}')
    print(f'{"total (with loading)":<22s} {summary["total_seconds"]:9.2f} '
          f'{summary["frames"] / summary["total_seconds"]:9.2f}')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_demo.py'))
