"""Draw the hand-made 2D joint annotations of bench/data/real_people_lsp14.json onto their images.

Writes one PNG per annotated image (skeleton, joint labels, person boxes; occluded-but-inferred joints
as hollow circles, spectators as grey boxes) so that anyone can check the ground truth by eye.
The images are not in the repository; each source is obtained as follows, and a missing one is skipped
with a message:

- ``shared/media/...``: the shared media folder next to the repository (``<repo>/../shared/media``),
  or ``--media_dir``; ``dancer.mp4#frame=N`` is the N-th decoded frame (0-based).
- ``skimage.data.astronaut``: from scikit-image.
- ``ultralytics-wheel:ultralytics/assets/X.jpg``: read from the ultralytics wheel, which is not
  installed, only downloaded into a cache folder (``--wheel_dir``, default ``$PYMAF_ULTRALYTICS_DIR`` or
  ``~/.cache/pymaf/ultralytics``)::

      pip download --no-deps ultralytics -d ~/.cache/pymaf/ultralytics

    python bench/show_annotations.py
    python bench/show_annotations.py --out output/annotations --only skates bus
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO / 'bench' / 'data' / 'real_people_lsp14.json'
MEDIA_DIR = REPO.parent / 'shared' / 'media'
WHEEL_DIR = Path(os.environ.get('PYMAF_ULTRALYTICS_DIR', Path.home() / '.cache' / 'pymaf' / 'ultralytics'))

JOINT_NAMES = ('R ankle', 'R knee', 'R hip', 'L hip', 'L knee', 'L ankle', 'R wrist', 'R elbow',
               'R shoulder', 'L shoulder', 'L elbow', 'L wrist', 'neck', 'head top')
SHORT_NAMES = ('rA', 'rK', 'rH', 'lH', 'lK', 'lA', 'rW', 'rE', 'rS', 'lS', 'lE', 'lW', 'N', 'T')
LIMBS = ((0, 1), (1, 2), (2, 12), (3, 12), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (9, 12), (9, 10),
         (10, 11), (12, 13))
RIGHT = {0, 1, 2, 6, 7, 8}
LEFT = {3, 4, 5, 9, 10, 11}


class SourceMissingError(Exception):
    """The image of an annotation entry cannot be obtained here (message says how to get it)."""


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """The ``index``-th frame (0-based, decode order) of a video, BGR uint8 (H, W, 3)."""
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, frame = cap.read()
            if not ok:
                raise SourceMissingError(f'{path} has fewer than {index + 1} frames')
        return frame
    finally:
        cap.release()


def read_wheel_asset(member: str, wheel_dir: Path) -> np.ndarray:
    """An image file from a downloaded ultralytics wheel (or an unpacked copy) in ``wheel_dir``, BGR uint8."""
    unpacked = wheel_dir / member
    if unpacked.is_file():
        return cv2.imread(str(unpacked), cv2.IMREAD_COLOR)
    for wheel in sorted(wheel_dir.glob('ultralytics-*.whl'), reverse=True):
        with zipfile.ZipFile(wheel) as zf:
            if member in zf.namelist():
                data = np.frombuffer(zf.read(member), np.uint8)
                return cv2.imdecode(data, cv2.IMREAD_COLOR)
    raise SourceMissingError(f'no ultralytics wheel with {member} in {wheel_dir}; get one with '
                        f'"pip download --no-deps ultralytics -d {wheel_dir}" (or pass --wheel_dir)')


def load_source(source: str, media_dir: Path = MEDIA_DIR, wheel_dir: Path = WHEEL_DIR) -> np.ndarray:
    """The image named by an annotation entry's ``source`` field, BGR uint8 (H, W, 3).

    Raises SourceMissingError when the file, package or wheel it needs is not available here."""
    if source.startswith('shared/media/'):
        name, _, frame = source[len('shared/media/'):].partition('#frame=')
        path = media_dir / name
        if not path.is_file():
            raise SourceMissingError(f'{path} not found (the shared media folder next to the repository; '
                                f'pass --media_dir to point elsewhere)')
        if frame:
            return read_video_frame(path, int(frame))
        return cv2.imread(str(path), cv2.IMREAD_COLOR)
    if source == 'skimage.data.astronaut':
        try:
            import skimage.data
        except ImportError as err:
            raise SourceMissingError('scikit-image is not installed (pip install scikit-image)') from err
        return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    if source.startswith('ultralytics-wheel:'):
        return read_wheel_asset(source[len('ultralytics-wheel:'):], wheel_dir)
    raise SourceMissingError(f'unknown source kind: {source}')


def draw_entry(image: np.ndarray, entry: dict) -> np.ndarray:
    """A copy of ``image`` with every person of ``entry`` drawn on it (BGR uint8)."""
    out = image.copy()
    scale = max(out.shape[:2]) / 800.0
    thick = max(1, int(round(2 * scale)))
    radius = max(2, int(round(4 * scale)))
    font = 0.35 * max(scale, 0.6)
    for number, person in enumerate(entry['people']):
        x0, y0, x1, y1 = person['bbox']
        if person['role'] == 'spectator':
            cv2.rectangle(out, (x0, y0), (x1, y1), (160, 160, 160), thick)
            continue
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 255), max(1, thick // 2))
        cv2.putText(out, str(number), (x0 + 2, y0 + int(14 * max(scale, 1))), cv2.FONT_HERSHEY_SIMPLEX,
                    2 * font, (0, 200, 255), thick)
        kp = person['keypoints']
        for a, b in LIMBS:
            if kp[a][2] and kp[b][2]:
                colour = (0, 0, 255) if a in RIGHT or b in RIGHT else (255, 0, 0) if a in LEFT or b in LEFT \
                    else (0, 220, 0)
                cv2.line(out, tuple(kp[a][:2]), tuple(kp[b][:2]), colour, thick, cv2.LINE_AA)
        for j, (x, y, v) in enumerate(kp):
            if not v:
                continue
            colour = (0, 0, 255) if j in RIGHT else (255, 0, 0) if j in LEFT else (0, 220, 0)
            cv2.circle(out, (x, y), radius, colour, -1 if v == 2 else thick, cv2.LINE_AA)
            cv2.putText(out, SHORT_NAMES[j], (x + radius + 1, y - radius), cv2.FONT_HERSHEY_SIMPLEX, font,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--annotations', type=Path, default=ANNOTATIONS, help='annotation JSON file')
    parser.add_argument('--out', type=Path, default=REPO / 'output' / 'annotations', help='folder for the PNGs')
    parser.add_argument('--media_dir', type=Path, default=MEDIA_DIR, help='folder with the shared media files')
    parser.add_argument('--wheel_dir', type=Path, default=WHEEL_DIR, help='folder with a downloaded ultralytics wheel')
    parser.add_argument('--only', nargs='*', help='image ids to draw (default: all)')
    args = parser.parse_args()
    entries = json.loads(args.annotations.read_text())['images']
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if args.only and entry['id'] not in args.only:
            continue
        try:
            image = load_source(entry['source'], args.media_dir, args.wheel_dir)
        except SourceMissingError as err:
            print(f'skip {entry["id"]}: {err}')
            continue
        if image.shape[:2] != (entry['height'], entry['width']):
            print(f'skip {entry["id"]}: image is {image.shape[1]}x{image.shape[0]}, annotations are for '
                  f'{entry["width"]}x{entry["height"]}')
            continue
        path = args.out / f'{entry["id"]}.png'
        cv2.imwrite(str(path), draw_entry(image, entry))
        subjects = sum(p['role'] == 'subject' for p in entry['people'])
        print(f'{path}: {subjects} people annotated, {len(entry["people"]) - subjects} spectators boxed')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='show_annotations.py'))
