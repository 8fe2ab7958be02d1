"""Is a person of whom only an arm reaches into the picture found, and is their wrist on their wrist?

A check of `utils.video.people.PeopleFinder.find_by_hands` on cases it was not designed on: every
``--step``-th frame of a video with one person (default ``../shared/media/dancer.mp4``) is searched as a
whole (``find(..., thorough=False)``: the person and their landmarks, the reference). For each arm held out
sideways (the wrist at least ``--min_reach`` of the frame's shorter side from the shoulder, horizontally,
and visible), the frame is cut at three places between the shoulder and the elbow (0.3, 0.5 and 0.7 of
the way), keeping the side with the forearm and hand, and each cut image goes to the photo finder
(``find``, all photo steps). A case is **found** when someone's wrist lies within ``--tolerance`` pixels of
the reference wrist; every other person reported is **extra**. ``--without_hands`` runs the finder without
the search by hands (before and after). Prints one line per case and the totals; ``--out`` writes them as
JSON.

    python bench/bench_border_arms.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / 'shared' / 'media' / 'dancer.mp4'
ARMS = {'left': (11, 13, 15), 'right': (12, 14, 16)}   # shoulder, elbow, wrist among the 33 landmarks


def cases(frame: np.ndarray, pose, min_reach: float) -> list[tuple[str, float, np.ndarray, np.ndarray]]:
    """The arm cases of one frame: (arm, where the cut lies from shoulder to elbow, cut image, reference
    wrist (2,) in the cut image's pixels)."""
    out = []
    for arm, (shoulder, elbow, wrist) in ARMS.items():
        xs, xe, xw = pose.image[[shoulder, elbow, wrist], 0]
        if abs(xw - xs) < min_reach * min(frame.shape[:2]) or pose.visibility[wrist] < 0.8:
            continue
        for share in (0.3, 0.5, 0.7):
            cut = int(round(xs + share * (xe - xs)))
            if xw > xs:
                out.append((arm, share, np.ascontiguousarray(frame[:, cut:]), pose.image[wrist, :2] - [cut, 0]))
            else:
                out.append((arm, share, np.ascontiguousarray(frame[:, :cut]), pose.image[wrist, :2].copy()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--video', type=Path, default=DEFAULT_VIDEO)
    parser.add_argument('--step', type=int, default=4, help='every step-th frame is tried')
    parser.add_argument('--min_reach', type=float, default=0.14,
                        help='the least horizontal shoulder-wrist distance, as a share of the shorter side')
    parser.add_argument('--tolerance', type=float, default=30.0, help='pixels between found and reference wrist')
    parser.add_argument('--without_hands', action='store_true', help='no search by hands (for comparison)')
    parser.add_argument('--out', type=Path, default=None, help='JSON report')
    args = parser.parse_args(argv)
    from utils.video.io import open_frame_source
    from utils.video.people import build_finder

    if not args.video.is_file():
        raise FileNotFoundError(f'{args.video} not found (pass --video)')
    finder = build_finder()
    if args.without_hands:
        finder.palms = None
    rows = []
    for index, frame in open_frame_source(args.video).frames():
        if index % args.step:
            continue
        whole = finder.find(frame, thorough=False)
        if len(whole) != 1:
            continue
        for arm, share, image, wrist in cases(frame, whole[0], args.min_reach):
            people = finder.find(image)
            errors = [min(float(np.linalg.norm(p.image[w, :2] - wrist)) for w in (15, 16)) for p in people]
            found = any(e <= args.tolerance for e in errors)
            rows.append({'frame': index, 'arm': arm, 'cut': share, 'people': len(people), 'found': found,
                         'wrist_error_px': min(errors) if found else None, 'extra': len(people) - int(found)})
            result = f'found, wrist {min(errors):.1f} px off' if found else 'not found'
            print(f'frame {index:3d} {arm:5s} arm, cut at {share:.1f}: {len(people)} people, {result}')
    totals = {'cases': len(rows), 'found': sum(r['found'] for r in rows), 'extra': sum(r['extra'] for r in rows)}
    print(f'{totals["found"]} of {totals["cases"]} arms found, {totals["extra"]} extra people')
    if args.out:
        args.out.write_text(json.dumps({'cases': rows, 'total': totals}, indent=1))
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(REPO))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_border_arms.py'))
