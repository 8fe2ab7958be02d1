"""Pure tensor geometry: rotation representations, camera projections and conversions, mesh normals.

Conventions (those of the original PyMAF, which the released checkpoint was trained with):
- ``pose_6d``: the first two columns of a rotation matrix, read row by row:
  ``[R00, R01, R10, R11, R20, R21]`` (Zhou et al., "On the Continuity of Rotation Representations in
  Neural Networks", CVPR 2019).
- Weak-perspective crop camera ``cam = [s, tx, ty]``: a body point X projects to normalised crop
  coordinates ``~ s * (X_xy + t_xy)`` in [-1, 1]. It equals a perspective camera with focal length
  ``FOCAL_LENGTH`` px, the crop of ``IMG_RES`` px and translation ``[tx, ty, 2 f / (IMG_RES s)]``.
- Camera axes are OpenCV's: x right, y down, z forward; units are metres and pixels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.constants import FOCAL_LENGTH, IMG_RES


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Unit-normalised quaternions ``[w, x, y, z]`` (N, 4) -> rotation matrices (N, 3, 3)."""
    quat = quat / quat.norm(p=2, dim=1, keepdim=True)
    w, x, y, z = quat.unbind(1)
    w2, x2, y2, z2 = w * w, x * x, y * y, z * z
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    rows = [w2 + x2 - y2 - z2, 2 * xy - 2 * wz, 2 * wy + 2 * xz,
            2 * wz + 2 * xy, w2 - x2 + y2 - z2, 2 * yz - 2 * wx,
            2 * xz - 2 * wy, 2 * wx + 2 * yz, w2 - x2 - y2 + z2]
    return torch.stack(rows, dim=1).view(-1, 3, 3)


def batch_rodrigues(pose_aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors (N, 3) (radians) -> rotation matrices (N, 3, 3), through a quaternion.

    A tiny offset (1e-8) keeps the zero rotation differentiable, as in the original.
    """
    angle = torch.norm(pose_aa + 1e-8, p=2, dim=1, keepdim=True)
    axis = pose_aa / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * axis], dim=1)
    return quat_to_rotmat(quat)


def rot6d_to_rotmat(pose_6d: torch.Tensor) -> torch.Tensor:
    """6D rotations (B, 6k) -> rotation matrices (B*k, 3, 3) by Gram-Schmidt.

    Each 6-vector is read as a 3x2 matrix in row-major order; its columns are the first two columns
    of the rotation.
    """
    cols = pose_6d.reshape(-1, 3, 2)
    b1 = F.normalize(cols[:, :, 0], dim=1)
    a2 = cols[:, :, 1]
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) -> 6D rotations (N, 6), the layout `rot6d_to_rotmat` reads."""
    return rotmat[:, :, :2].reshape(-1, 6)


def rotation_matrix_to_quaternion(rotmat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) -> quaternions ``[w, x, y, z]`` (N, 4).

    Shepperd's method: of the four algebraically equivalent formulas, each matrix uses the one whose
    pivot (the trace-like term ``t``) is largest, chosen with the same tests as the original.
    """
    r = rotmat[:, :3, :3].transpose(1, 2)
    r00, r01, r02 = r[:, 0, 0], r[:, 0, 1], r[:, 0, 2]
    r10, r11, r12 = r[:, 1, 0], r[:, 1, 1], r[:, 1, 2]
    r20, r21, r22 = r[:, 2, 0], r[:, 2, 1], r[:, 2, 2]
    small_z = r22 < eps
    x_over_y = r00 > r11
    x_below_minus_y = r00 < -r11

    t0 = 1 + r00 - r11 - r22
    t1 = 1 - r00 + r11 - r22
    t2 = 1 - r00 - r11 + r22
    t3 = 1 + r00 + r11 + r22
    q0 = torch.stack([r12 - r21, t0, r01 + r10, r20 + r02], dim=1)
    q1 = torch.stack([r20 - r02, r01 + r10, t1, r12 + r21], dim=1)
    q2 = torch.stack([r01 - r10, r20 + r02, r21 + r12, t2], dim=1)
    q3 = torch.stack([t3, r12 - r21, r20 - r02, r01 - r10], dim=1)

    c0 = (small_z & x_over_y).to(rotmat.dtype)
    c1 = (small_z & ~x_over_y).to(rotmat.dtype)
    c2 = (~small_z & x_below_minus_y).to(rotmat.dtype)
    c3 = (~small_z & ~x_below_minus_y).to(rotmat.dtype)
    quat = q0 * c0[:, None] + q1 * c1[:, None] + q2 * c2[:, None] + q3 * c3[:, None]
    pivot = t0 * c0 + t1 * c1 + t2 * c2 + t3 * c3
    return quat / torch.sqrt(pivot)[:, None] * 0.5


def quaternion_to_angle_axis(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions ``[w, x, y, z]`` (N, 4) -> axis-angle vectors (N, 3), angle in [0, pi]."""
    xyz = quat[:, 1:]
    sin_sq = (xyz * xyz).sum(dim=1)
    sin_half = torch.sqrt(sin_sq)
    cos_half = quat[:, 0]
    two_theta = 2.0 * torch.where(cos_half < 0.0, torch.atan2(-sin_half, -cos_half),
                                  torch.atan2(sin_half, cos_half))
    k = torch.where(sin_sq > 0.0, two_theta / sin_half, 2.0 * torch.ones_like(sin_half))
    return xyz * k[:, None]


def rotation_matrix_to_angle_axis(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) -> axis-angle (N, 3), through the quaternion as the original.

    Non-finite results (degenerate input) are set to 0, as the original does.
    """
    pose_aa = quaternion_to_angle_axis(rotation_matrix_to_quaternion(rotmat))
    return torch.nan_to_num(pose_aa, nan=0.0)


def weak_cam_to_cam_t(cam: torch.Tensor, focal_length: float = FOCAL_LENGTH,
                      img_res: float = IMG_RES) -> torch.Tensor:
    """Crop camera ``[s, tx, ty]`` (B, 3) -> perspective translation ``[tx, ty, 2 f / (res s)]`` (B, 3), m."""
    depth = 2 * focal_length / (img_res * cam[:, 0] + 1e-9)
    return torch.stack([cam[:, 1], cam[:, 2], depth], dim=-1)


def perspective_projection(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                           focal_length: torch.Tensor | float, camera_center: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-frame points.

    Args:
        points: (B, N, 3) points, metres.
        rotation: (B, 3, 3) camera rotation.
        translation: (B, 3) camera translation, metres.
        focal_length: scalar or (B,) focal length, px.
        camera_center: (B, 2) principal point, px.

    Returns:
        (B, N, 2) pixel coordinates.
    """
    focal = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device).reshape(-1, 1)
    cam_points = torch.einsum('bij,bkj->bki', rotation, points) + translation.unsqueeze(1)
    xy = cam_points[..., :2] / cam_points[..., 2:]
    return xy * focal.unsqueeze(-1) + camera_center.unsqueeze(1)


def projection(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project body points with the weak-perspective crop camera, as the original's `projection`.

    Args:
        points: (B, N, 3) points in the body's camera-aligned frame, metres.
        cam: (B, 3) crop camera ``[s, tx, ty]``.

    Returns:
        (B, N, 2) normalised crop coordinates (x right, y down), [-1, 1] inside the crop.
    """
    batch = points.shape[0]
    eye = torch.eye(3, dtype=points.dtype, device=points.device).expand(batch, -1, -1)
    center = torch.zeros(batch, 2, dtype=points.dtype, device=points.device)
    points_px = perspective_projection(points, eye, weak_cam_to_cam_t(cam), FOCAL_LENGTH, center)
    return points_px / (IMG_RES / 2.0)


def estimate_translation(joints_3d: torch.Tensor, joints_2d: torch.Tensor, focal_length: float = FOCAL_LENGTH,
                         img_size: float = IMG_RES, use_all_joints: bool = False) -> torch.Tensor:
    """Camera translation that best projects 3D joints onto 2D keypoints (weighted least squares).

    Only the 24 ground-truth joints (indices 25:) are used unless ``use_all_joints``, as in the original.
    Samples with fewer than two visible joints get a least-squares solution regularised towards zero.

    Args:
        joints_3d: (B, 49, 3) joints, metres.
        joints_2d: (B, 49, 3) keypoints ``[u, v, confidence]`` in crop pixels (0..img_size).
        focal_length: px. img_size: crop side, px (principal point at its centre).

    Returns:
        (B, 3) translation, metres.
    """
    if not use_all_joints:
        joints_3d, joints_2d = joints_3d[:, 25:], joints_2d[:, 25:]
    dtype = torch.float64
    pts, kp = joints_3d.to(dtype), joints_2d.to(dtype)
    weight = kp[..., 2].clamp(min=0).sqrt()
    center = img_size / 2.0
    du, dv = kp[..., 0] - center, kp[..., 1] - center
    zeros = torch.zeros_like(du)
    # Each joint gives two equations a . t = b (for x and for y); rows are weighted by sqrt(conf).
    rows_x = torch.stack([torch.full_like(du, focal_length), zeros, -du], dim=-1)
    rows_y = torch.stack([zeros, torch.full_like(dv, focal_length), -dv], dim=-1)
    rhs_x = du * pts[..., 2] - focal_length * pts[..., 0]
    rhs_y = dv * pts[..., 2] - focal_length * pts[..., 1]
    a = torch.cat([rows_x, rows_y], dim=1) * torch.cat([weight, weight], dim=1)[..., None]
    b = torch.cat([rhs_x, rhs_y], dim=1) * torch.cat([weight, weight], dim=1)
    ata = a.transpose(1, 2) @ a + 1e-9 * torch.eye(3, dtype=dtype, device=a.device)
    atb = a.transpose(1, 2) @ b.unsqueeze(-1)
    return torch.linalg.solve(ata, atb).squeeze(-1).to(joints_3d.dtype)


def convert_crop_cam_to_orig_img(cam, bbox, img_width: float, img_height: float):
    """Crop camera -> the original's full-image weak-perspective camera ``[sx, sy, tx, ty]``.

    Args:
        cam: (N, 3) crop cameras ``[s, tx, ty]`` (tensor or array).
        bbox: (N, 3 or 4) square crop windows ``[cx, cy, side(, side)]``, px.
        img_width, img_height: image size, px.

    Returns:
        (N, 4) ``[sx, sy, tx, ty]``: x_norm = sx (X + tx) maps to [-1, 1] across the image width,
        y likewise with sy and the height.
    """
    lib = torch if isinstance(cam, torch.Tensor) else np
    cx, cy, side = bbox[:, 0], bbox[:, 1], bbox[:, 2]
    half_w, half_h = img_width / 2.0, img_height / 2.0
    sx = cam[:, 0] * side / img_width
    sy = cam[:, 0] * side / img_height
    tx = (cx - half_w) / half_w / sx + cam[:, 1]
    ty = (cy - half_h) / half_h / sy + cam[:, 2]
    return lib.stack([sx, sy, tx, ty], 1)


def crop_cam_to_full_cam_t(cam, bbox_center, bbox_size, img_width: float, img_height: float,
                           focal_length: float = FOCAL_LENGTH):
    """Crop camera -> translation of the body in the full-image perspective camera.

    The full-image camera is a pinhole with ``focal_length`` px and the principal point at the image
    centre; projecting ``verts + t`` with it reproduces the crop camera's projection, placed in the image.

    Args:
        cam: (N, 3) crop cameras ``[s, tx, ty]``.
        bbox_center: (N, 2) crop window centres, px.
        bbox_size: (N,) crop window sides, px.
        img_width, img_height: image size, px.

    Returns:
        (N, 3) translation, metres.
    """
    lib = torch if isinstance(cam, torch.Tensor) else np
    s_px = cam[:, 0] * bbox_size + 1e-9
    tx = cam[:, 1] + 2 * (bbox_center[:, 0] - img_width / 2.0) / s_px
    ty = cam[:, 2] + 2 * (bbox_center[:, 1] - img_height / 2.0) / s_px
    return lib.stack([tx, ty, 2 * focal_length / s_px], 1)


def orig_cam_to_cam_t(orig_cam: np.ndarray, img_height: int, focal_length: float = FOCAL_LENGTH) -> np.ndarray:
    """Full-image translation (N, 3) metres from ``orig_cam`` (N, 4) ``[sx, sy, tx, ty]`` (for results of the
    original demo, which saved no ``cam_t``): ``[tx, ty, 2 * focal / (img_height * sy)]``."""
    orig_cam = np.asarray(orig_cam, dtype=np.float64).reshape(-1, 4)
    depth = 2.0 * focal_length / (img_height * np.maximum(orig_cam[:, 1], 1e-9))
    return np.stack([orig_cam[:, 2], orig_cam[:, 3], depth], axis=1).astype(np.float32)


def compute_similarity_transform(src_points: torch.Tensor, dst_points: torch.Tensor) -> torch.Tensor:
    """Align each sample of ``src_points`` (B, N, 3) to ``dst_points`` (B, N, 3) by a similarity transform.

    Per-sample Procrustes (Umeyama, PAMI 1991): scale, rotation (reflections excluded through the sign of
    the determinant) and translation minimising the squared distance. Returns the aligned (B, N, 3) points.
    """
    mu_src = src_points.mean(dim=1, keepdim=True)
    mu_dst = dst_points.mean(dim=1, keepdim=True)
    x_src, x_dst = src_points - mu_src, dst_points - mu_dst
    var_src = (x_src ** 2).sum(dim=(1, 2))
    cov = x_src.transpose(1, 2) @ x_dst
    u, _, vh = torch.linalg.svd(cov)
    v = vh.transpose(1, 2)
    fix = torch.eye(3, dtype=src_points.dtype, device=src_points.device).repeat(len(src_points), 1, 1)
    fix[:, -1, -1] = torch.sign(torch.linalg.det(u @ vh))
    rot = v @ fix @ u.transpose(1, 2)
    scale = torch.einsum('bii->b', rot @ cov) / var_src
    return scale[:, None, None] * x_src @ rot.transpose(1, 2) + mu_dst


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        verts: (N, V, 3) vertices.
        faces: (F, 3) long vertex indices.

    Returns:
        (N, V, 3) unit normals (zero for vertices with no face of non-zero area); their orientation follows
        the winding.
    """
    num_meshes, num_verts = verts.shape[:2]
    faces = faces.to(device=verts.device, dtype=torch.long)
    # Work on (component, item) rows: elementwise maths on contiguous rows is much faster on CPU than on
    # the short last dimension of (..., 3) tensors.
    corner_ids = (faces.T[:, None, :] + num_verts * torch.arange(num_meshes, device=verts.device)[:, None])
    corner_ids = corner_ids.reshape(-1)  # (3 * N * F,): corner k of face f of mesh n at k * N * F + n * F + f
    coords = verts.reshape(-1, 3).T.contiguous()  # (3, N * V)
    x, y, z = coords.index_select(1, corner_ids).view(3, 3, -1)  # each (3 corners, N * F)
    ux, uy, uz = x[1] - x[0], y[1] - y[0], z[1] - z[0]
    vx, vy, vz = x[2] - x[0], y[2] - y[0], z[2] - z[0]
    face_n = torch.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx])  # (3, N * F), |n| = 2 area
    normals = torch.zeros_like(coords).scatter_add_(1, corner_ids.expand(3, -1), face_n.repeat(1, 3))
    length = torch.sqrt(normals[0] ** 2 + normals[1] ** 2 + normals[2] ** 2).clamp(min=1e-12)
    return (normals / length).T.reshape(num_meshes, num_verts, 3)
