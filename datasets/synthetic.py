"""Synthetic SPIN-format dataset: posed bodies rendered over procedural backgrounds, with full labels.

Bodies come from the body model of ``core.path_config.body_model_paths()`` (the official SMPL files when
the user has them, otherwise the project's stand-in), gendered per sample. Poses are drawn inside
per-joint angle limits of a standing or moving person (no random rotations), shapes from N(0, 1) betas
clipped to +-2.5, the global orientation upright with any heading and a small tilt, and the camera at a
distance that makes the person fill 35-85% of the image height. Appearance (skin, shirt, trousers,
shoes, sleeve length) and light vary per sample; backgrounds mix gradients, multi-scale noise, stripes
and random shapes. Everything is drawn from one ``numpy`` generator seeded by the caller, so a seed
gives the same files.

Written fields (SPIN format, see ``datasets/base_dataset.py``): ``imgname``, ``center``, ``scale``
(box side / 200), ``part`` (N, 24, 3) and ``openpose`` (N, 25, 3) pixel joints with visibility (1
inside the image), ``S`` (N, 24, 4) camera-frame 3D joints in metres centred at the H36M-regressor
pelvis, ``pose`` (N, 72) axis-angle with the global orientation in the camera frame, ``shape``
(N, 10), ``has_smpl``, ``gender`` ('m'/'f'), plus ``cam_t`` (N, 3, m) and ``focal_length`` (N, px) of
the full-image pinhole camera (principal point at the image centre) that rendered the image.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

logger = logging.getLogger(__name__)

# Left-side joint limits as Euler 'xyz' angle ranges (radians) in SMPL's rest frame (x to the body's left,
# y up, z forward). Right-side joints mirror them (y and z negated). Knee/elbow flexion is one-sided.
_LEFT_LIMITS = {
    'hip': ((-1.6, 0.4), (-0.5, 0.5), (-0.15, 0.7)),
    'knee': ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),
    'ankle': ((-0.4, 0.5), (-0.3, 0.3), (-0.2, 0.2)),
    'foot': ((-0.2, 0.2), (-0.1, 0.1), (-0.1, 0.1)),
    'collar': ((-0.1, 0.1), (-0.2, 0.2), (-0.2, 0.25)),
    'shoulder': ((-0.6, 0.6), (-1.2, 0.5), (-1.4, 0.6)),
    'elbow': ((-0.2, 0.2), (-2.1, 0.0), (-0.1, 0.1)),
    'wrist': ((-0.5, 0.5), (-0.3, 0.3), (-0.5, 0.5)),
    'hand': ((-0.2, 0.2), (-0.1, 0.1), (-0.2, 0.2)),
}
# Rest angles (inside the limits) that calm poses shrink towards: arms hanging down rather than SMPL's
# T-pose, slightly bent elbows and knees. Joints not listed rest at zero.
_LEFT_REST = {'shoulder': (0.0, 0.0, -1.15), 'elbow': (0.0, -0.3, 0.0), 'knee': (0.1, 0.0, 0.0)}
_CENTRE_LIMITS = {
    'spine': ((-0.15, 0.35), (-0.3, 0.3), (-0.2, 0.2)),
    'neck': ((-0.3, 0.4), (-0.5, 0.5), (-0.25, 0.25)),
    'head': ((-0.3, 0.3), (-0.4, 0.4), (-0.2, 0.2)),
}
# SMPL body joints 1..23 and the limit each uses: (name, side) with side +1 left, -1 right, 0 centre.
_BODY_JOINTS = [
    ('hip', 1), ('hip', -1), ('spine', 0), ('knee', 1), ('knee', -1), ('spine', 0), ('ankle', 1), ('ankle', -1),
    ('spine', 0), ('foot', 1), ('foot', -1), ('neck', 0), ('collar', 1), ('collar', -1), ('head', 0),
    ('shoulder', 1), ('shoulder', -1), ('elbow', 1), ('elbow', -1), ('wrist', 1), ('wrist', -1),
    ('hand', 1), ('hand', -1),
]
# SMPL joints whose skinning region is drawn as trousers, shoes, shirt or skin.
_TROUSER_JOINTS = (0, 1, 2, 4, 5)
_SHOE_JOINTS = (7, 8, 10, 11)
_SKIN_JOINTS = (12, 15, 20, 21, 22, 23)
_FOREARM_JOINTS = (18, 19)
# Bodies posed per forward pass of the body model (bounds memory for large datasets).
_POSE_CHUNK = 64
_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.53], [0.74, 0.53, 0.39], [0.55, 0.37, 0.26],
                        [0.38, 0.25, 0.17], [0.92, 0.74, 0.62]])


def _joint_tables() -> tuple[np.ndarray, np.ndarray]:
    """(23, 3, 2) Euler angle limits and (23, 3) rest angles of the body joints."""
    limits, rests = [], []
    for name, side in _BODY_JOINTS:
        rng = np.array(_LEFT_LIMITS[name] if side else _CENTRE_LIMITS[name], dtype=np.float64)
        rest = np.array(_LEFT_REST.get(name, (0.0, 0.0, 0.0)) if side else (0.0, 0.0, 0.0))
        if side < 0:  # mirror: negate y and z rotations, which swaps their bounds
            rng[1:] = -rng[1:, ::-1]
            rest[1:] = -rest[1:]
        limits.append(rng)
        rests.append(rest)
    return np.stack(limits), np.stack(rests)


JOINT_LIMITS, JOINT_REST = _joint_tables()


def sample_body_pose(rng: np.random.Generator, num: int) -> np.ndarray:
    """Draw plausible body poses inside the joint limits.

    Each sample has an activity level in [0.15, 1] that shrinks every joint's range towards its rest
    angle (arms down, knees and elbows slightly bent), so calm standing poses and large motions both
    occur; within the range the angle is Beta(2, 2) distributed (rarely at the limits).

    Args:
        rng: numpy generator.
        num: number of poses.

    Returns:
        (num, 69) axis-angle body pose (joints 1..23), radians.
    """
    lo, hi = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]
    rest = JOINT_REST
    activity = rng.uniform(0.15, 1.0, size=(num, 1, 1))
    u = rng.beta(2.0, 2.0, size=(num, 23, 3))
    euler = rest + activity * (lo + u * (hi - lo) - rest)
    return Rotation.from_euler('xyz', euler.reshape(-1, 3)).as_rotvec().reshape(num, 69)


def sample_global_orient(rng: np.random.Generator, num: int) -> np.ndarray:
    """Upright bodies in the camera frame (y down): any heading, up to 15 degrees of tilt; (num, 3)."""
    heading = Rotation.from_euler('y', rng.uniform(-np.pi, np.pi, size=(num, 1)))
    tilt = Rotation.from_euler('xz', rng.uniform(-0.26, 0.26, size=(num, 2)))
    upright = Rotation.from_euler('x', np.pi)  # SMPL's y-up body into the y-down camera
    return (upright * tilt * heading).as_rotvec()


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A procedural (H, W, 3) float background in [0, 1]: gradient, noise, stripes and shapes mixed."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    c0, c1 = rng.uniform(0, 1, size=(2, 3))
    img = c0 + ramp[..., None] * (c1 - c0)
    # Multi-scale value noise, coloured.
    noise = np.zeros((height, width))
    for octave in range(4):
        cells = 2 ** (octave + 2)
        coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
        noise += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) / 2 ** octave
    img = img + rng.uniform(0.05, 0.35) * noise[..., None] * rng.uniform(0.3, 1.0, size=3)
    if rng.uniform() < 0.4:
        period = rng.uniform(6, 40)
        phase = np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy
        stripes = (np.sin(phase * max(height, width) * 2 * np.pi / period) > 0).astype(float)
        img = img * (1 - 0.25 * stripes[..., None]) + 0.25 * stripes[..., None] * rng.uniform(0, 1, size=3)
    canvas = np.ascontiguousarray(np.clip(img, 0, 1) * 255).astype(np.uint8)
    for _ in range(rng.integers(0, 8)):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(4, width // 20), max(5, width // 3)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(canvas, (x0, y0), (x0 + size, y0 + int(rng.integers(4, size + 1))), color, -1)
        elif kind == 1:
            cv2.circle(canvas, (x0, y0), size // 2, color, -1)
        else:
            cv2.line(canvas, (x0, y0), (int(rng.integers(0, width)), int(rng.integers(0, height))), color,
                     int(rng.integers(1, 6)))
    return canvas.astype(np.float64) / 255


def vertex_colors(rng: np.random.Generator, segment: np.ndarray) -> np.ndarray:
    """Per-vertex RGB (V, 3) in [0, 1]: skin, shirt, trousers and shoes by skinning segment."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.05)
    shirt, trousers = rng.uniform(0.05, 0.95, size=(2, 3))
    shoes = rng.uniform(0.0, 0.4, size=3)
    colors = np.tile(shirt, (len(segment), 1))
    colors[np.isin(segment, _TROUSER_JOINTS)] = trousers
    colors[np.isin(segment, _SHOE_JOINTS)] = shoes
    colors[np.isin(segment, _SKIN_JOINTS)] = skin
    if rng.uniform() < 0.5:  # short sleeves
        colors[np.isin(segment, _FOREARM_JOINTS)] = skin
    return np.clip(colors, 0, 1)


@dataclass
class RenderedBody:
    """One rendered sample: ``image`` (H, W, 3) uint8 RGB and ``mask`` (H, W) bool body coverage."""

    image: np.ndarray
    mask: np.ndarray


def render_body(verts_cam: torch.Tensor, faces: torch.Tensor, colors: np.ndarray, background: np.ndarray,
                focal_length: float, rng: np.random.Generator) -> RenderedBody:
    """Render one body with per-vertex colours and Lambertian shading over a background.

    Args:
        verts_cam: (V, 3) vertices in the camera frame (x right, y down, z forward), metres.
        faces: (F, 3) long faces.
        colors: (V, 3) vertex colours in [0, 1].
        background: (H, W, 3) float image in [0, 1].
        focal_length: pinhole focal length in pixels; the principal point is the image centre.
        rng: numpy generator (light direction and sensor noise).

    Returns:
        The composited image and the body mask.
    """
    from utils.geometry import vertex_normals
    from utils.render.rasterizer import rasterize

    height, width = background.shape[:2]
    z = verts_cam[:, 2]
    verts_px = torch.stack([focal_length * verts_cam[:, 0] / z + width / 2,
                            focal_length * verts_cam[:, 1] / z + height / 2, z], dim=-1)
    face_idx, bary, _ = rasterize(verts_px[None].float(), faces, height, width, cull_backfaces=True)
    face_idx, bary = face_idx[0], bary[0]
    mask = (face_idx >= 0).numpy()
    image = background.copy()
    if mask.any():
        corners = faces[face_idx[face_idx >= 0]]
        w = bary[face_idx >= 0][..., None].double()
        normals = vertex_normals(verts_cam[None].double(), faces)[0]
        n = torch.nn.functional.normalize((normals[corners] * w).sum(1), dim=-1).numpy()
        col = (torch.from_numpy(colors)[corners] * w).sum(1).numpy()
        light = rng.normal(size=3) * [0.6, 0.4, 0.3] + [0.0, -0.6, -1.0]
        light /= np.linalg.norm(light)
        shade = rng.uniform(0.25, 0.45) + rng.uniform(0.5, 0.8) * np.clip(np.abs(n @ light), 0, 1)
        image[mask] = np.clip(col * shade[:, None], 0, 1)
    image = image + rng.normal(scale=rng.uniform(0.0, 0.02), size=image.shape)
    return RenderedBody(image=(np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask=mask)


@dataclass
class BodyModels:
    """Gendered body models plus what labelling needs: faces, skinning segments, the H36M regressor."""

    models: dict
    faces: torch.Tensor
    segment: np.ndarray
    j_regressor_h36m: torch.Tensor
    is_standin: bool


def load_body_models() -> BodyModels:
    """Build male, female and neutral body models from ``core.path_config.body_model_paths()``."""
    from core import path_config
    from models.smpl import SMPL

    paths = path_config.body_model_paths()
    models = {g: SMPL(paths.smpl_dir, gender=g, batch_size=1).eval() for g in ('male', 'female', 'neutral')}
    neutral = models['neutral']
    j_h36m = torch.from_numpy(np.load(paths.joint_regressor_h36m)).float()
    return BodyModels(models=models, faces=neutral.faces_tensor.long(),
                      segment=neutral.lbs_weights.argmax(dim=1).numpy(), j_regressor_h36m=j_h36m,
                      is_standin=bool(getattr(paths, 'is_standin', False)))


def _pose_bodies(bodies: BodyModels, genders: np.ndarray, betas: np.ndarray, pose_aa: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (N, V, 3) and 49 joints (N, 49, 3) of each sample with its gendered model, body frame."""
    verts = [None] * len(genders)
    joints = [None] * len(genders)
    for code, name in (('m', 'male'), ('f', 'female')):
        idx_all = np.nonzero(genders == code)[0]
        for start in range(0, len(idx_all), _POSE_CHUNK):
            idx = idx_all[start:start + _POSE_CHUNK]
            pose = torch.from_numpy(pose_aa[idx]).float()
            with torch.no_grad():
                out = bodies.models[name](betas=torch.from_numpy(betas[idx]).float(), body_pose=pose[:, 3:],
                                          global_orient=pose[:, :3])
            for k, i in enumerate(idx):
                verts[i], joints[i] = out.vertices[k], out.joints[k]
    return torch.stack(verts), torch.stack(joints)


def generate_dataset(out_dir: str, num_samples: int = 300, seed: int = 0, img_width: int = 256,
                     img_height: int = 256, box_enlarge: float = 1.1, jpeg_quality: int = 92,
                     npz_name: str = 'synthetic.npz', save_masks: bool = False,
                     focal_range: tuple[float, float] = (1.0, 2.0), max_offset: float = 0.8,
                     npz_path: str | None = None, bodies: BodyModels | None = None,
                     image_subdir: str = 'images') -> str:
    """Render ``num_samples`` labelled images into ``out_dir`` and write the SPIN-format annotation file.

    Args:
        out_dir: output folder; images go to ``out_dir/<image_subdir>/`` and the npz to ``out_dir/npz_name``.
        num_samples: number of samples (one person each).
        seed: seed of every random choice; equal seeds give equal files.
        img_width, img_height: image size in pixels.
        box_enlarge: box side = this times the larger side of the body's projected extent.
        jpeg_quality: JPEG quality of the images.
        npz_name: file name of the annotation file (written into ``out_dir``).
        save_masks: also write the body masks (PNG, 255 = body) to ``out_dir/masks/`` and list them in the
            ``maskname`` field.
        focal_range: focal length range as multiples of the larger image side (1 to 2: 53 to 28 degrees
            field of view).
        max_offset: largest shift of the body from the image centre, as a fraction of the free margin
            (0 keeps every body centred on the optical axis).
        npz_path: write the annotation file here instead of ``out_dir/npz_name``.
        bodies: body models (loaded from ``core.path_config`` when None).
        image_subdir: image folder inside ``out_dir`` (separate splits sharing one root need separate ones).

    Returns:
        Path of the written npz; its ``imgname`` entries are relative to ``out_dir``.
    """
    import cv2

    rng = np.random.default_rng(seed)
    bodies = bodies or load_body_models()
    os.makedirs(os.path.join(out_dir, image_subdir), exist_ok=True)
    n = num_samples
    genders = np.where(rng.uniform(size=n) < 0.5, 'm', 'f')
    betas = np.clip(rng.normal(size=(n, 10)), -2.5, 2.5)
    pose_aa = np.concatenate([sample_global_orient(rng, n), sample_body_pose(rng, n)], axis=1)
    verts, joints = _pose_bodies(bodies, genders, betas, pose_aa)
    verts, joints = verts.double(), joints.double()

    size = max(img_width, img_height)
    focal = rng.uniform(focal_range[0], focal_range[1], size=n) * size
    height_frac = rng.uniform(0.35, 0.85, size=n)
    extent = verts.amax(dim=1) - verts.amin(dim=1)
    mid = (verts.amax(dim=1) + verts.amin(dim=1)) / 2
    depth = torch.from_numpy(focal * np.maximum(extent[:, 1].numpy(), 0.5 * extent[:, 0].numpy())
                             / (height_frac * img_height))
    slack = (1 - height_frac) / 2 * max_offset
    offset_px = rng.uniform(-1, 1, size=(n, 2)) * slack[:, None] * [img_width, img_height]
    shift_xy = torch.from_numpy(offset_px / focal[:, None]) * depth[:, None]
    cam_t = torch.cat([shift_xy, depth[:, None]], dim=1) - mid
    verts_cam = verts + cam_t[:, None]
    joints_cam = joints + cam_t[:, None]

    f = torch.from_numpy(focal)[:, None]
    centre_px = torch.tensor([img_width / 2, img_height / 2], dtype=torch.float64)
    # Pixel-index coordinates (pixel centres at integers), the convention of SPIN's 2D labels.
    joints_px = f[..., None] * joints_cam[..., :2] / joints_cam[..., 2:] + centre_px - 0.5
    verts_px = f[..., None] * verts_cam[..., :2] / verts_cam[..., 2:] + centre_px - 0.5
    inside = ((joints_px[..., 0] >= 0) & (joints_px[..., 0] <= img_width - 1)
              & (joints_px[..., 1] >= 0) & (joints_px[..., 1] <= img_height - 1)).double()
    keypoints = torch.cat([joints_px, inside[..., None]], dim=-1).numpy()
    lo, hi = verts_px.amin(dim=1), verts_px.amax(dim=1)
    center = ((lo + hi) / 2).numpy()
    scale = (box_enlarge * (hi - lo).amax(dim=1) / 200).numpy()
    pelvis = torch.einsum('jv,nvc->njc', bodies.j_regressor_h36m.double(), verts_cam)[:, 0]
    joints_3d = (joints_cam[:, 25:] - pelvis[:, None]).numpy()

    imgnames, masknames = [], []
    if save_masks:
        os.makedirs(os.path.join(out_dir, 'masks'), exist_ok=True)
    for i in range(n):
        background = make_background(rng, img_height, img_width)
        colors = vertex_colors(rng, bodies.segment)
        rendered = render_body(verts_cam[i], bodies.faces, colors, background, float(focal[i]), rng)
        name = f'{image_subdir}/{i:06d}.jpg'
        cv2.imwrite(os.path.join(out_dir, name), rendered.image[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        imgnames.append(name)
        if save_masks:
            masknames.append(f'masks/{i:06d}.png')
            cv2.imwrite(os.path.join(out_dir, masknames[-1]), rendered.mask.astype(np.uint8) * 255)

    npz_path = str(npz_path) if npz_path is not None else os.path.join(out_dir, npz_name)
    os.makedirs(os.path.dirname(os.path.abspath(npz_path)), exist_ok=True)
    extra = {'maskname': np.array(masknames)} if save_masks else {}
    np.savez(npz_path, **extra, imgname=np.array(imgnames), center=center, scale=scale, part=keypoints[:, 25:],
             openpose=keypoints[:, :25], S=np.concatenate([joints_3d, np.ones((n, 24, 1))], axis=2),
             pose=pose_aa, shape=betas, has_smpl=np.ones(n), gender=genders, cam_t=cam_t.numpy(),
             focal_length=focal)
    logger.info('wrote %d synthetic samples to %s (stand-in body model: %s)', n, npz_path, bodies.is_standin)
    return npz_path
