"""Time the pure-PyTorch rasteriser, the overlay renderer and the IUV renderer.

The mesh is an SMPL-sized UV sphere (6890 vertices, 13776 faces) stretched to a person-like ellipsoid
(0.6 x 1.7 x 0.3 m) and placed so that it fills a person-like part of the image: most of the height of a
224 or 512 crop, about 70% of the height of a 1920x1080 frame (and three such people side by side).
``--body standin`` uses the project's stand-in body (assets/standin, SMPL topology, T-pose, scaled to the
same height) instead.

    python bench/bench_render.py
    python bench/bench_render.py --body standin
    python bench/bench_render.py --device cuda --repeats 20
    python bench/bench_render.py --threads 1
    python bench/bench_render.py --threads 1 --baseline 50769cb   # also the code of that revision, interleaved
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import load_baseline  # noqa: E402

from utils.densepose_methods import DensePoseUV, load_densepose_uv  # noqa: E402
from utils.render.iuv_renderer import IUV_Renderer  # noqa: E402
from utils.render.mesh_primitives import uv_sphere  # noqa: E402
from utils.render.rasterizer import rasterize  # noqa: E402
from utils.render.renderer import PyRenderer  # noqa: E402

FOCAL = 5000.0
BODY_SIZE = np.array([0.3, 0.85, 0.15], np.float32)  # half-extents in metres


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per case (after 2 warm-ups)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = leave the default)')
    parser.add_argument('--body', choices=('ellipsoid', 'standin'), default='ellipsoid',
                        help='mesh to render: the SMPL-sized ellipsoid or the stand-in body (T-pose)')
    parser.add_argument('--baseline', default=None,
                        help='git revision whose rasteriser and PyRenderer are timed too ("before" rows)')
    return parser.parse_args(argv)


def _timed(fn, repeats: int, device: torch.device) -> str:
    """Median and minimum wall time of fn() in milliseconds, formatted.

    The minimum is the better estimate on a shared machine, where other processes cause outliers.
    """
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return f'median {statistics.median(times):7.1f} ms  min {min(times):7.1f} ms'


def _person_depth(height_px: int, fill: float) -> float:
    """Camera distance at which the 1.7 m body spans ``fill`` of the image height."""
    return FOCAL * 2 * float(BODY_SIZE[1]) / (fill * height_px)


def main(args: argparse.Namespace) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    verts, faces = uv_sphere()
    body = verts * BODY_SIZE
    if args.body == 'standin':
        assets = Path(__file__).resolve().parents[1] / 'assets' / 'standin'
        template = np.load(assets / 'body_neutral.npz')['v_template'] * np.array([1, -1, -1], np.float32)
        faces = np.load(assets / 'body_common.npz')['faces'].astype(np.int64)
        template -= (template.max(0) + template.min(0)) / 2
        body = template * (2 * BODY_SIZE[1] / np.ptp(template[:, 1]))
    faces_t = torch.from_numpy(faces).to(device)
    versions = {'': (rasterize, PyRenderer)}
    if args.baseline:
        old = load_baseline(args.baseline)
        versions['before'] = (old['rasterizer'].rasterize, old['renderer'].PyRenderer)
    print(f'device={device} threads={torch.get_num_threads()} body={args.body} faces={len(faces)} '
          f'torch={torch.__version__}')

    cases = [('224x224', 224, 224, 0.9, 1), ('512x512', 512, 512, 0.9, 1), ('1920x1080', 1080, 1920, 0.7, 1),
             ('1920x1080, 3 people', 1080, 1920, 0.7, 3)]
    for name, height, width, fill, people in cases:
        depth = _person_depth(height, fill)
        offsets = np.linspace(-1.0, 1.0, people) if people > 1 else np.zeros(1)
        cam_t = np.stack([[x, 0.0, depth + 0.5 * i] for i, x in enumerate(offsets)]).astype(np.float32)
        meshes = np.stack([body] * people)
        pts = torch.from_numpy(meshes + cam_t[:, None]).to(device)
        proj = torch.stack([FOCAL * pts[..., 0] / pts[..., 2] + width / 2,
                            FOCAL * pts[..., 1] / pts[..., 2] + height / 2, pts[..., 2]], dim=-1)
        proj = proj.reshape(1, -1, 3)
        offsets_v = torch.arange(people, device=device)[:, None, None] * len(verts)
        all_faces = (faces_t[None] + offsets_v).reshape(-1, 3)
        for cull in (False, True):
            for tag, (raster, _) in versions.items():
                ms = _timed(lambda r=raster: r(proj, all_faces, height, width, cull_backfaces=cull),
                            args.repeats, device)
                print(f'rasterize      {name:22s} cull_backfaces={cull!s:5s} {ms}  {tag}')
        frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        for scale in ((1.0, 0.5) if height >= 1080 else (1.0,)):
            for tag, (_, renderer_cls) in versions.items():
                renderer = renderer_cls(faces, focal_length=FOCAL, render_scale=scale, device=device)
                ms = _timed(lambda: renderer(meshes, frame=frame, cam_t=cam_t), args.repeats, device)
                print(f'PyRenderer     {name:22s} render_scale={scale:<4}     {ms}  (overlay on the frame) {tag}')

    if args.body == 'standin':
        uv = load_densepose_uv(Path(__file__).resolve().parents[1] / 'assets' / 'standin' / 'UV_data'
                               / 'UV_Processed.mat')
    else:
        uv = DensePoseUV(
            face_part=1 + np.arange(len(faces)) % 24, faces=faces,
            u_norm=np.linspace(0, 1, len(verts), dtype=np.float32),
            v_norm=np.linspace(1, 0, len(verts), dtype=np.float32), dp_to_smpl=np.arange(len(verts)))
    iuv_renderer = IUV_Renderer(uv, output_size=56, device=device)
    batch = 32
    smpl_verts = torch.from_numpy(np.stack([body] * batch)).to(device)
    cam = torch.tensor([[0.9, 0.0, 0.0]] * batch, device=device)
    ms = _timed(lambda: iuv_renderer(smpl_verts, cam), args.repeats, device)
    print(f'IUV_Renderer   56x56, batch {batch}                   {ms}  (whole batch)')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(parse_args()), prog='bench_render.py'))
