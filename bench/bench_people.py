"""How fast the demo finds and follows people with BlazePose: milliseconds per frame of
`utils.video.people.PeopleTracker` on a video (default ``../shared/media/dancer.mp4``, 1080p, one dancer).

The frames are decoded first, so only finding and following is timed: the tracker's ``update`` on every
frame, single-threaded LiteRT, with the demo's proposer (OpenCV HOG) and its defaults (a search for
newcomers every 10 frames). Each checkout runs in its own process, the checkouts in turn ``--repeats``
times (the best run of each counts), so that on a shared machine both see the same load; ``--repo``
adds another checkout (for example the previous commit, to report before and after as a ratio).

    python bench/bench_people.py
    python bench/bench_people.py --repo /tmp/old_checkout --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / 'shared' / 'media' / 'dancer.mp4'


def run_once(video: Path, search_every: int, max_frames: int | None) -> dict:
    """Time the tracker over the video in this process; returns the numbers as a dict."""
    from utils.video.detection import HogDetector
    from utils.video.io import open_frame_source
    from utils.video.people import PeopleTracker, build_finder

    frames = [frame for _, frame in open_frame_source(video, max_frames=max_frames).frames()]
    finder = build_finder(proposals=HogDetector().detect, num_threads=1)
    finder.landmarker(frames[0], [frames[0].shape[1] / 2, frames[0].shape[0] / 2, 256.0, 0.0])  # warm up
    finder.detector.detect(frames[0])
    finder.stats.update(windows=0, proposals=0, landmark_runs=0)
    tracker = PeopleTracker(finder, search_every=search_every, max_gap=15)
    start = time.perf_counter()
    seen = 0
    for index, frame in enumerate(frames):
        seen += len(tracker.update(index, frame))
    seconds = time.perf_counter() - start
    return {'frames': len(frames), 'ms_per_frame': 1000 * seconds / len(frames), 'people_frames': seen,
            'tracks': [(t.track_id, len(t.frames)) for t in tracker.tracks()], **finder.stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--video', type=Path, default=DEFAULT_VIDEO)
    parser.add_argument('--repo', type=Path, action='append', default=[], help='another checkout to time as well')
    parser.add_argument('--repeats', type=int, default=2, help='runs per checkout, in turn (the best counts)')
    parser.add_argument('--search_every', type=int, default=10)
    parser.add_argument('--max_frames', type=int, default=None)
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--once', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.once:
        print(json.dumps(run_once(args.video, args.search_every, args.max_frames)))
        return 0
    if not args.video.is_file():
        raise SystemExit(f'{args.video} not found: pass --video')
    repos = [REPO, *args.repo]
    best: dict[Path, dict] = {}
    for _ in range(args.repeats):
        for repo in repos:
            # This script, importing the checkout's code (the checkout need not have this script).
            cmd = [args.python, str(Path(__file__).resolve()), '--once', '--video', str(args.video),
                   '--search_every', str(args.search_every)]
            if args.max_frames:
                cmd += ['--max_frames', str(args.max_frames)]
            proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True,
                                  env={**os.environ, 'PYTHONPATH': str(repo)})
            if proc.returncode != 0:
                raise SystemExit(f'{repo}: {proc.stderr}')
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if repo not in best or result['ms_per_frame'] < best[repo]['ms_per_frame']:
                best[repo] = result
    base = best[REPO]['ms_per_frame']
    print(f'{args.video.name}: best of {args.repeats} per checkout (ms per frame; ratio to this checkout)')
    for repo, r in best.items():
        print(f'{str(repo):<40s} {r["ms_per_frame"]:7.1f} ms  x{r["ms_per_frame"] / base:5.2f}  '
              f'windows {r["windows"]:4d}  landmark passes {r["landmark_runs"]:4d}  tracks {r["tracks"]}')
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_people.py'))
