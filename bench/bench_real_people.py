"""How well the demo finds real people and places their joints: PCK against hand-made annotations.

Runs ``demo.py`` (as a user would, one process per input, ``--no_render``) on every image of
``bench/data/real_people_lsp14.json`` (see ``bench/show_annotations.py`` for where each image comes from)
and compares the demo's final 2D joints (``kp2d_px``: the 14 LSP joints of the mesh, projected into the
image) with the annotations:

- people are matched to annotated subjects one to one (Hungarian assignment on the mean joint distance
  relative to the person's height; a pair further apart than one height is no match);
- **found**: the share of annotated subjects matched by a person of the demo;
- **PCK@0.1**: the share of annotated joints (visible or inferable) within 0.1 x the person's height
  (``height_px``) of the demo's joint, over the matched subjects (``pck_found``) and over all subjects, a
  missed subject's joints counting as wrong (``pck_all``);
- **extra**: people the demo reports that match no subject; ``on_spectators`` of them lie on a box
  annotated as a spectator.

``--repo`` runs another checkout's demo.py (for example the previous default, to report before and after);
``--demo_args`` are passed to every run. Prints a table and writes ``--out`` as JSON.

    python bench/bench_real_people.py
    python bench/bench_real_people.py --demo_args="--no_refine"
    python bench/bench_real_people.py --repo /tmp/old_checkout --label before
"""
from __future__ import annotations

import argparse
import json
import pickle
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from show_annotations import ANNOTATIONS, MEDIA_DIR, WHEEL_DIR, SourceMissingError, load_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LSP_IN_J49 = slice(25, 39)  # the 14 LSP joints among the model's 49 output joints, in the annotation order


def run_demo(repo: Path, argv: list[str], python: str) -> tuple[float, str]:
    """Run ``demo.py`` of ``repo``; returns (seconds, combined output). Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.run([python, str(repo / 'demo.py'), *argv], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'demo.py {" ".join(argv)} failed:\n{proc.stdout}\n{proc.stderr}')
    return time.perf_counter() - start, proc.stdout + proc.stderr


def predictions(pkl: Path, frame: int) -> list[np.ndarray]:
    """(14, 2) LSP joints in image pixels of every person of ``frame`` in a demo's output.pkl."""
    if not pkl.is_file():
        return []
    with open(pkl, 'rb') as f:
        results = pickle.load(f)
    people = []
    for person in results.values():
        rows = np.nonzero(np.asarray(person['frame_ids']) == frame)[0]
        people += [np.asarray(person['kp2d_px'])[row, LSP_IN_J49] for row in rows]
    return people


def score_image(entry: dict, people: list[np.ndarray]) -> dict:
    """Match the demo's people to the annotated subjects and count found people and correct joints."""
    subjects = [p for p in entry['people'] if p['role'] == 'subject']
    spectators = [p for p in entry['people'] if p['role'] == 'spectator']
    cost = np.full((len(subjects), len(people)), 1e6)
    for i, subject in enumerate(subjects):
        kp = np.asarray(subject['keypoints'], dtype=np.float64)
        known = kp[:, 2] > 0
        for j, pred in enumerate(people):
            cost[i, j] = np.linalg.norm(pred[known] - kp[known, :2], axis=1).mean() / subject['height_px']
    matched, correct, total, correct_all = 0, 0, 0, 0
    used = set()
    if len(subjects) and len(people):
        for i, j in zip(*linear_sum_assignment(cost)):
            if cost[i, j] > 1.0:
                continue
            used.add(j)
            matched += 1
            kp = np.asarray(subjects[i]['keypoints'], dtype=np.float64)
            known = kp[:, 2] > 0
            dist = np.linalg.norm(people[j][known] - kp[known, :2], axis=1)
            correct += int((dist <= 0.1 * subjects[i]['height_px']).sum())
            total += int(known.sum())
    correct_all = correct
    total_all = sum(int((np.asarray(s['keypoints'])[:, 2] > 0).sum()) for s in subjects)
    extra = [people[j] for j in range(len(people)) if j not in used]
    on_spectators = 0
    for pred in extra:
        cx, cy = pred.mean(axis=0)
        on_spectators += any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in (s['bbox'] for s in spectators))
    return {'subjects': len(subjects), 'found': matched, 'people_reported': len(people), 'extra': len(extra),
            'on_spectators': on_spectators, 'correct': correct, 'joints_found': total,
            'joints_all': total_all, 'pck_found': correct / max(total, 1), 'pck_all': correct_all / max(total_all, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repo', type=Path, default=REPO, help='checkout whose demo.py runs (default: this one)')
    parser.add_argument('--python', default=sys.executable, help='interpreter for demo.py')
    parser.add_argument('--demo_args', default='', help='extra demo.py flags, one string')
    parser.add_argument('--label', default='this checkout', help='name of this run in the report')
    parser.add_argument('--media_dir', type=Path, default=MEDIA_DIR)
    parser.add_argument('--wheel_dir', type=Path, default=WHEEL_DIR)
    parser.add_argument('--out', type=Path, default=None, help='JSON report')
    parser.add_argument('--only', nargs='*', default=None, help='image ids to run (default: all)')
    args = parser.parse_args(argv)
    entries = [e for e in json.loads(ANNOTATIONS.read_text())['images'] if not args.only or e['id'] in args.only]
    extra_args = shlex.split(args.demo_args)
    report = {'label': args.label, 'repo': str(args.repo), 'demo_args': args.demo_args, 'images': {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos: dict[str, Path] = {}
        for entry in entries:
            source = entry['source']
            try:
                if '#frame=' in source:
                    video, _, frame = source.partition('#frame=')
                    frame = int(frame)
                    if video not in videos:
                        path = args.media_dir / video[len('shared/media/'):]
                        if not path.is_file():
                            raise SourceMissingError(f'{path} not found')
                        seconds, _ = run_demo(args.repo, ['--vid_file', str(path), '--output_folder',
                                                          str(tmp / 'video'), '--no_render', *extra_args], args.python)
                        videos[video] = tmp / 'video' / path.stem / 'output.pkl'
                        report.setdefault('seconds', {})[video] = seconds
                    pkl = videos[video]
                else:
                    image = load_source(source, args.media_dir, args.wheel_dir)
                    path = tmp / 'images' / f'{entry["id"]}.png'
                    path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(path), image)
                    frame = 0
                    seconds, _ = run_demo(args.repo, ['--img_file', str(path), '--output_folder', str(tmp / 'out'),
                                                      '--no_render', *extra_args], args.python)
                    report.setdefault('seconds', {})[entry['id']] = seconds
                    pkl = tmp / 'out' / entry['id'] / 'output.pkl'
            except SourceMissingError as err:
                print(f'skipped {entry["id"]}: {err}')
                continue
            report['images'][entry['id']] = score_image(entry, predictions(pkl, frame))
    rows = report['images']
    totals = {k: sum(r[k] for r in rows.values()) for k in
              ('subjects', 'found', 'extra', 'on_spectators', 'correct', 'joints_found', 'joints_all')}
    totals['pck_found'] = totals['correct'] / max(totals['joints_found'], 1)
    totals['pck_all'] = totals['correct'] / max(totals['joints_all'], 1)
    report['total'] = totals
    print(f'{args.label}: demo.py {args.demo_args or "(defaults)"} in {args.repo}')
    print(f'{"image":<12s} {"found":>7s} {"extra":>5s} {"spect":>5s} {"PCK found":>9s} {"PCK all":>8s}')
    for name, r in list(rows.items()) + [('TOTAL', totals)]:
        print(f'{name:<12s} {r["found"]:>3d}/{r["subjects"]:<3d} {r["extra"]:>5d} {r["on_spectators"]:>5d} '
              f'{100 * r["pck_found"]:>8.1f}% {100 * r["pck_all"]:>7.1f}%')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_real_people.py'))
