"""Preview renders of the neutral body (numpy linear blend skinning and a walking pose).
"""
from __future__ import annotations

import logging
import math
import pathlib

import numpy as np

from tools.standin_body.anny_source import axis_angle_to_matrix
from tools.standin_body.constants import SMPL_PARENTS

logger = logging.getLogger('make_standin_body')


def numpy_lbs(v_template: np.ndarray, weights: np.ndarray, joints: np.ndarray, pose_aa: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Minimal linear blend skinning without pose correctives, in numpy.

    Args:
        v_template: (V, 3) rest vertices. weights: (V, 24) skinning weights. joints: (24, 3) rest joints.
        pose_aa: (24, 3) axis-angle, radians.

    Returns:
        (V, 3) posed vertices and (24, 3) posed joints.
    """
    rot = axis_angle_to_matrix(pose_aa)
    world = np.zeros((24, 4, 4))
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rot[j]
        local[:3, 3] = joints[j] - (joints[SMPL_PARENTS[j]] if j else 0.0)
        world[j] = local if j == 0 else world[SMPL_PARENTS[j]] @ local
    rel = world.copy()
    rel[:, :3, 3] -= np.einsum('jab,jb->ja', world[:, :3, :3], joints)
    blend = np.einsum('vj,jab->vab', weights, rel)
    return np.einsum('vab,vb->va', blend[:, :3, :3], v_template) + blend[:, :3, 3], world[:, :3, 3]


def walking_pose() -> np.ndarray:
    """(24, 3) axis-angle of a mid-stride walking pose with arms down."""
    pose = np.zeros((24, 3))
    pose[1] = [-0.45, 0.0, 0.0]
    pose[2] = [0.35, 0.0, 0.0]
    pose[4] = [0.3, 0.0, 0.0]
    pose[5] = [0.6, 0.0, 0.0]
    pose[16] = [0.0, 0.25, -1.2]
    pose[17] = [0.0, 0.25, 1.2]
    pose[18] = [0.0, -0.5, 0.0]
    pose[19] = [0.0, 0.5, 0.0]
    return pose


def render_previews(out_dir: pathlib.Path, v_template: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                    joints: np.ndarray, parts_img: tuple | None = None) -> list[pathlib.Path]:
    """Front and side PNGs of the body in T-pose and in a walking pose."""
    from PIL import Image

    from utils.render.renderer import PyRenderer
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = PyRenderer(faces=faces, resolution=(512, 512), focal_length=700.0)
    written = []
    poses = {'tpose': np.zeros((24, 3)), 'walk': walking_pose()}
    for name, pose in poses.items():
        verts, _ = numpy_lbs(v_template, weights, joints, pose)
        verts = verts - verts.mean(0)
        for view, deg in (('front', 0.0), ('side', 90.0)):
            ang = math.radians(deg)
            rot_y = np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
            cam = (verts @ rot_y.T) * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 0.0, 3.2])
            rgb, alpha = renderer.render_rgba(cam.astype(np.float32), colors='neutral')
            img = rgb.numpy() + (1.0 - alpha.numpy()[..., None]) * 1.0
            path = out_dir / f'standin_{name}_{view}.png'
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
            written.append(path)
    return written
