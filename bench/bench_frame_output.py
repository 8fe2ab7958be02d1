"""Cost per frame of the demo's output stage, before and after, in one process: mesh overlay, PNG, H.264.

Every figure is measured single-threaded (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``), as the
pipelined demo runs each stage, on real frames and meshes: the frames of a video and the meshes a demo run
saved for it (``output.npz``). "Before" is the code of a git revision (``--baseline``, loaded from git into
a temporary folder), "after" the working tree; both run back to back on the same frames, alternating, so
that the ratios hold on a shared machine even when the absolute times do not.

- overlay: `PyRenderer.__call__` at the video's size (CPU ms per frame), and how many pixels differ;
- PNG: CPU ms and MB per frame of OpenCV's default PNG encoder (what `write_png` used before), OpenCV at
  PNG compression levels 0-3, and `encode_png` with each deflate;
- video: the ffmpeg child's CPU time per frame (user + system, from ``getrusage(RUSAGE_CHILDREN)``), this
  process's CPU time per frame, the file size and the PSNR of the decoded video against the frames.

    python demo.py --vid_file ../shared/media/dancer.mp4 --no_render --output_folder /tmp/out
    python bench/bench_frame_output.py --results /tmp/out/dancer/output.npz --baseline 50769cb
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from baseline import load_baseline  # noqa: E402

from utils.render.renderer import PyRenderer  # noqa: E402
from utils.video import io as video_io  # noqa: E402

DANCER = REPO.parent / 'shared' / 'media' / 'dancer.mp4'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--vid_file', default=str(DANCER), help='input video (default: the shared dancer clip)')
    p.add_argument('--results', required=True, help="a demo run's output.npz for this video (meshes per frame)")
    p.add_argument('--baseline', default=None, help='git revision whose renderer and writers are "before"')
    p.add_argument('--frames', type=int, default=45, help='frames to use (from the start of the video)')
    p.add_argument('--repeats', type=int, default=2, help='timed passes over the frames per variant')
    return p.parse_args(argv)


def cpu_ms_per_frame(fn, items: list, repeats: int) -> float:
    """Least CPU time per item of ``fn(item)`` over ``repeats`` passes (this process, milliseconds)."""
    fn(items[0])
    best = float('inf')
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - start) / len(items) * 1000.0)
    return best


def encode_video(writer_cls, path: Path, frames: list[np.ndarray], fps: float) -> tuple[float, float]:
    """(ffmpeg CPU ms per frame, this process's CPU ms per frame) to write ``frames`` with ``writer_cls``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = time.process_time()
    with writer_cls(path, fps=fps) as writer:
        for frame in frames:
            writer.write(frame)
    own = time.process_time() - own
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return child / len(frames) * 1000.0, own / len(frames) * 1000.0


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    cap = cv2.VideoCapture(str(path))
    errors = []
    for frame in frames:
        ok, decoded = cap.read()
        if not ok:
            raise RuntimeError(f'{path} has fewer frames than written')
        errors.append(np.mean((cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float64) - frame) ** 2))
    cap.release()
    return 10.0 * np.log10(255.0 ** 2 / np.mean(errors))


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with np.load(args.results) as data:
        results = {k: data[k] for k in ('verts', 'cam_t', 'frame_ids', 'faces', 'focal_length')}
    cap = cv2.VideoCapture(args.vid_file)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while len(frames) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    people = {i: ([], []) for i in range(len(frames))}
    for verts, cam_t, f in zip(results['verts'], results['cam_t'], results['frame_ids']):
        if int(f) in people:
            people[int(f)][0].append(verts)
            people[int(f)][1].append(cam_t)
    items = [(frames[i], np.stack(v), np.stack(t)) for i, (v, t) in people.items() if v]
    height, width = frames[0].shape[:2]
    print(f'{len(frames)} frames {width}x{height} from {args.vid_file}, {len(items)} with people; torch '
          f'{torch.__version__}, 1 thread; baseline: {args.baseline or "none"}')

    faces, focal = results['faces'], float(results['focal_length'])
    renderers = {'after': PyRenderer(faces, focal_length=focal)}
    baseline_io = None
    if args.baseline:
        baseline = load_baseline(args.baseline)
        baseline_io = baseline['io']
        renderers['before'] = baseline['renderer'].PyRenderer(faces, focal_length=focal)
    overlays = {}
    for name, renderer in renderers.items():
        overlays[name] = [renderer(v, frame=f, cam_t=t) for f, v, t in items]
    print('\noverlay (PyRenderer at the video size, CPU ms per frame; interleaved runs)')
    times = {name: [] for name in renderers}
    for _ in range(args.repeats):
        for name, renderer in renderers.items():
            times[name].append(cpu_ms_per_frame(lambda it, r=renderer: r(it[1], frame=it[0], cam_t=it[2]), items, 1))
    for name in renderers:
        print(f'  {name:7s} {min(times[name]):7.1f} ms')
    if 'before' in renderers:
        diff = np.stack([np.abs(a.astype(int) - b.astype(int)).max(-1)
                         for a, b in zip(overlays['after'], overlays['before'])])
        print(f'  ratio   {min(times["before"]) / min(times["after"]):7.1f} x; pixels differing from before: '
              f'{(diff > 0).sum() / len(items):.1f} per frame, largest difference {diff.max()} levels')

    print('\nPNG (one 1080p overlay, CPU ms per frame, MB per frame)')
    pngs = overlays['after']
    variants = [('OpenCV default (before)', lambda f: cv2.imencode('.png', cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1])]
    for level in range(4):
        params = [cv2.IMWRITE_PNG_COMPRESSION, level]
        variants.append((f'OpenCV level {level}',
                         lambda f, p=params: cv2.imencode('.png', cv2.cvtColor(f, cv2.COLOR_RGB2BGR), p)[1]))
    variants.append(('encode_png, zlib fallback', lambda f: video_io.encode_png(f, video_io._deflate_zlib)))
    variants.append(('encode_png (after)', video_io.encode_png))
    for name, encode in variants:
        ms = cpu_ms_per_frame(encode, pngs, args.repeats)
        size = np.mean([len(encode(f)) for f in pngs[:5]]) / 1e6
        print(f'  {name:28s} {ms:6.1f} ms  {size:5.2f} MB')

    print('\nH.264 (crf 20, yuv420p; ffmpeg CPU ms per frame, this process CPU ms per frame, size, PSNR)')
    writers = {'after': video_io.VideoWriter}
    if baseline_io is not None:
        writers['before'] = baseline_io.VideoWriter
    with tempfile.TemporaryDirectory() as tmp:
        measured = {name: [] for name in writers}
        for _ in range(args.repeats):
            for name, writer_cls in writers.items():
                measured[name].append(encode_video(writer_cls, Path(tmp) / f'{name}.mp4', pngs, fps))
        for name in writers:
            path = Path(tmp) / f'{name}.mp4'
            child, own = min(measured[name])
            print(f'  {name:7s} ffmpeg {child:6.1f} ms  python {own:5.1f} ms  {os.path.getsize(path) / 1e6:5.2f} MB  '
                  f'PSNR {psnr(path, pngs):5.2f} dB')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(parse_args()), prog='bench_frame_output.py'))
