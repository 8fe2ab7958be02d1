"""Render a short sample video of synthetic people walking, for the README's first command.

The people are the body model in use (the stand-in unless SMPL is installed) in a procedural walk cycle
over a procedural background, rendered with the project's own renderer. Deterministic from the seed::

    python3 -m tools.make_sample_clip --out assets/sample/walkers.mp4
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from datasets.synthetic import load_body_models, make_background, render_body, vertex_colors
from utils import cli
from utils.video.io import VideoWriter

FPS = 20.0
# (joint index, axis, amplitude rad, phase) of the walk cycle; SMPL joint order.
_WALK = [(1, 0, -0.45, 0.0), (2, 0, -0.45, np.pi), (4, 0, 0.55, 0.6), (5, 0, 0.55, np.pi + 0.6),
         (16, 2, 0.0, 0.0), (17, 2, 0.0, 0.0), (16, 1, 0.35, np.pi), (17, 1, 0.35, np.pi),
         (18, 1, -0.25, np.pi), (19, 1, 0.25, np.pi)]
_ARMS_DOWN = {16: (0, 0, -1.2), 17: (0, 0, 1.2)}


def walk_pose(phase: float, heading: float) -> np.ndarray:
    """(72,) axis-angle pose of a walk cycle at ``phase`` (rad), facing ``heading`` about the vertical."""
    euler = np.zeros((24, 3))
    for joint, xyz in _ARMS_DOWN.items():
        euler[joint] = xyz
    for joint, axis, amp, offset in _WALK:
        euler[joint, axis] += amp * np.sin(phase + offset)
    pose = Rotation.from_euler('xyz', euler).as_rotvec()
    pose[0] = (Rotation.from_euler('x', np.pi) * Rotation.from_euler('y', heading)).as_rotvec()
    return pose.reshape(-1)


def make_clip(out: str, seconds: float = 4.0, width: int = 640, height: int = 360, seed: int = 7) -> Path:
    """Write the clip; returns its path."""
    rng = np.random.default_rng(seed)
    bodies = load_body_models()
    background = make_background(rng, height, width)
    focal = 1.2 * width
    people = [  # (gender, start x m, speed m/s, depth m, heading)
        ('male', -1.6, 0.55, 6.0, np.pi / 2),
        ('female', 1.4, -0.35, 7.5, -np.pi / 2),
    ]
    looks = [(rng.normal(size=10).clip(-1.5, 1.5), vertex_colors(rng, bodies.segment)) for _ in people]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = VideoWriter(path, FPS)
    for i in range(int(seconds * FPS)):
        t = i / FPS
        image = (background * 255).astype(np.uint8)
        # Farther people first, so nearer ones cover them.
        for (gender, x0, speed, depth, heading), (betas, colors) in sorted(zip(people, looks), key=lambda p: -p[0][3]):
            pose = torch.from_numpy(walk_pose(2 * np.pi * 0.9 * t, heading)).float()[None]
            with torch.no_grad():
                out = bodies.models[gender](betas=torch.from_numpy(betas).float()[None], body_pose=pose[:, 3:],
                                            global_orient=pose[:, :3])
            verts = out.vertices[0] + torch.tensor([x0 + speed * t, 0.15, depth])
            image = render_body(verts, bodies.faces, colors, image.astype(np.float64) / 255, focal,
                                np.random.default_rng(seed)).image
        writer.write(image)
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    """Console entry (utils/cli.py convention); returns the exit status."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='assets/sample/walkers.mp4', help='output .mp4')
    parser.add_argument('--seconds', type=float, default=4.0, help='clip length in seconds')
    parser.add_argument('--seed', type=int, default=7, help='random seed (looks and background)')

    def run() -> None:
        args = parser.parse_args(argv)
        cli.check_positive('--seconds', args.seconds)
        cli.check_min('--seed', args.seed, 0)
        if not args.out.endswith('.mp4'):
            raise cli.InputError(f'--out must name an .mp4 file, got {args.out}', 'pass e.g. --out clip.mp4')
        out = cli.check_writable_file(args.out, '--out')
        partial = out.with_name(f'.{out.stem}.partial.mp4')  # renamed when complete: no half-written clip
        try:
            make_clip(str(partial), args.seconds, seed=args.seed).replace(out)
        finally:
            partial.unlink(missing_ok=True)
        print(f'wrote {out}')
    return cli.run_main(run, prog='tools.make_sample_clip')


if __name__ == '__main__':
    sys.exit(main())
