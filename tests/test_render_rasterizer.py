"""Tests of the pure-PyTorch rasteriser against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.render.mesh_primitives import uv_sphere
from utils.render.rasterizer import rasterize


def _pixel_centres(height: int, width: int) -> np.ndarray:
    """(H, W, 2) pixel centre positions (x, y)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs + 0.5, ys + 0.5], axis=-1)


def _inside_triangle(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screen barycentrics of points (..., 2) in a 2D triangle (3, 2), and whether they are inside."""
    a, b, c = tri
    mat = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
    rel = points - a
    l12 = rel @ np.linalg.inv(mat).T
    bary = np.concatenate([1 - l12.sum(-1, keepdims=True), l12], axis=-1)
    return bary, (bary >= -1e-9).all(-1)


def test_single_triangle_coverage_and_barycentrics():
    tri_xy = np.array([[2.2, 1.7], [13.6, 4.1], [5.3, 11.8]])
    depth = np.array([2.0, 2.0, 2.0])
    verts = torch.tensor(np.concatenate([tri_xy, depth[:, None]], 1), dtype=torch.float32)[None]
    faces = torch.tensor([[0, 1, 2]])
    face_idx, bary, zbuf = rasterize(verts, faces, 14, 16)

    expected_bary, expected_inside = _inside_triangle(_pixel_centres(14, 16), tri_xy)
    assert expected_inside.sum() > 30
    np.testing.assert_array_equal(face_idx[0].numpy() == 0, expected_inside)
    assert (face_idx[0][~torch.from_numpy(expected_inside)] == -1).all()
    # Constant depth: perspective-correct barycentrics equal the screen ones.
    np.testing.assert_allclose(bary[0].numpy()[expected_inside], expected_bary[expected_inside], atol=1e-5)
    np.testing.assert_allclose(zbuf[0].numpy()[expected_inside], 2.0, rtol=1e-6)
    assert torch.isinf(zbuf[0][~torch.from_numpy(expected_inside)]).all()
    assert (bary[0][~torch.from_numpy(expected_inside)] == 0).all()


def test_perspective_correct_barycentrics_and_depth():
    # A triangle in 3D projected with a pinhole camera: the barycentrics of a pixel must reproduce the 3D
    # point on the triangle that projects onto that pixel centre.
    focal, cx, cy = 40.0, 16.0, 16.0
    pts = np.array([[-0.5, -0.6, 2.0], [0.7, -0.2, 5.0], [-0.1, 0.8, 3.0]])
    proj = np.stack([focal * pts[:, 0] / pts[:, 2] + cx, focal * pts[:, 1] / pts[:, 2] + cy, pts[:, 2]], 1)
    verts_px = torch.tensor(proj, dtype=torch.float64)[None]
    face_idx, bary, zbuf = rasterize(verts_px, torch.tensor([[0, 1, 2]]), 32, 32)
    covered = face_idx[0].numpy() == 0
    assert covered.sum() > 100
    point_3d = bary[0].numpy()[covered] @ pts
    centres = _pixel_centres(32, 32)[covered]
    np.testing.assert_allclose(focal * point_3d[:, 0] / point_3d[:, 2] + cx, centres[:, 0], atol=1e-9)
    np.testing.assert_allclose(focal * point_3d[:, 1] / point_3d[:, 2] + cy, centres[:, 1], atol=1e-9)
    np.testing.assert_allclose(zbuf[0].numpy()[covered], point_3d[:, 2], rtol=1e-9)


@pytest.mark.parametrize('near_first', [True, False])
def test_nearer_triangle_wins_regardless_of_order(near_first):
    big = np.array([[1.0, 1.0], [19.0, 1.0], [1.0, 19.0]])
    small = np.array([[3.0, 3.0], [12.0, 3.0], [3.0, 12.0]])
    near = np.concatenate([small, np.full((3, 1), 1.5)], 1)
    far = np.concatenate([big, np.full((3, 1), 4.0)], 1)
    verts = np.concatenate([near, far] if near_first else [far, near])
    verts = torch.tensor(verts, dtype=torch.float32)[None]
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    near_id = 0 if near_first else 1
    face_idx, _, zbuf = rasterize(verts, faces, 20, 20)
    _, in_small = _inside_triangle(_pixel_centres(20, 20), small)
    _, in_big = _inside_triangle(_pixel_centres(20, 20), big)
    np.testing.assert_array_equal(face_idx[0].numpy()[in_small], near_id)
    np.testing.assert_array_equal(face_idx[0].numpy()[in_big & ~in_small], 1 - near_id)
    np.testing.assert_allclose(zbuf[0].numpy()[in_small], 1.5)


def test_interpenetrating_triangles_split_per_pixel():
    # Two triangles crossing each other: the depth test is per pixel, not per face.
    a = [[0.0, 0.0, 1.0], [20.0, 0.0, 3.0], [0.0, 20.0, 1.0]]  # depth grows with x
    b = [[0.0, 0.0, 3.0], [20.0, 0.0, 1.0], [0.0, 20.0, 3.0]]  # depth shrinks with x
    verts = torch.tensor(a + b, dtype=torch.float64)[None]
    face_idx, _, _ = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), 20, 20)
    covered = face_idx[0] >= 0
    xs = torch.arange(20, dtype=torch.float64)[None].expand(20, 20) + 0.5
    assert (face_idx[0][covered & (xs < 9.9)] == 0).all()
    assert (face_idx[0][covered & (xs > 10.1)] == 1).all()


def test_empty_scene_and_offscreen_and_behind_camera():
    verts = torch.tensor([[[-30.0, -30.0, 2.0], [-20.0, -30.0, 2.0], [-30.0, -20.0, 2.0],
                           [2.0, 2.0, -1.0], [9.0, 2.0, -1.0], [2.0, 9.0, -1.0]]])
    face_idx, bary, zbuf = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), 10, 12)
    assert face_idx.shape == (1, 10, 12) and bary.shape == (1, 10, 12, 3) and zbuf.shape == (1, 10, 12)
    assert (face_idx == -1).all() and torch.isinf(zbuf).all()
    face_idx, _, _ = rasterize(verts, torch.zeros(0, 3, dtype=torch.long), 4, 4)
    assert (face_idx == -1).all()


def test_backface_culling_and_batch():
    ccw_on_screen = [[2.0, 2.0, 1.0], [2.0, 12.0, 1.0], [12.0, 2.0, 1.0]]  # area < 0 in y-down coordinates
    cw_on_screen = [[2.0, 2.0, 1.0], [12.0, 2.0, 1.0], [2.0, 12.0, 1.0]]
    verts = torch.tensor([ccw_on_screen, cw_on_screen])
    faces = torch.tensor([[0, 1, 2]])
    face_idx, _, _ = rasterize(verts, faces, 14, 14)
    assert (face_idx[0] == 0).sum() == (face_idx[1] == 0).sum() > 20
    culled, _, _ = rasterize(verts, faces, 14, 14, cull_backfaces=True)
    assert (culled[0] == face_idx[0]).all() and (culled[1] == -1).all()


@pytest.mark.parametrize('max_candidates', [1, 500, 10_000_000])
def test_sphere_visible_surface_and_chunking(max_candidates):
    # A closed sphere: the visible surface is the near hemisphere, culling changes nothing, no holes, and
    # the chunk size does not change the result.
    verts, faces = uv_sphere(12, 16)
    height = width = 48
    focal, tz = 60.0, 4.0
    v = torch.tensor(verts, dtype=torch.float64) + torch.tensor([0.0, 0.0, tz], dtype=torch.float64)
    proj = torch.stack([focal * v[:, 0] / v[:, 2] + width / 2,
                        focal * v[:, 1] / v[:, 2] + height / 2, v[:, 2]], 1)
    faces_t = torch.from_numpy(faces)
    face_idx, bary, zbuf = rasterize(proj[None], faces_t, height, width, max_candidates=max_candidates)
    culled, _, _ = rasterize(proj[None], faces_t, height, width, cull_backfaces=True)
    assert torch.equal(face_idx, culled)
    covered = face_idx[0] >= 0
    corners = v[faces_t[face_idx[0][covered]]]
    points = (bary[0][covered][..., None] * corners).sum(1)
    # Every visible point lies on the near side of the sphere (z <= tz).
    assert (points[:, 2] <= tz + 1e-9).all()
    np.testing.assert_allclose(zbuf[0][covered].numpy(), points[:, 2].numpy(), rtol=1e-9)
    reference, _, _ = rasterize(proj[None], faces_t, height, width)
    assert torch.equal(face_idx, reference)


def test_no_cracks_between_faces_far_from_the_origin():
    # A jittered grid of triangles placed around pixel (1500, 900) of a full-HD frame, in float32: every
    # pixel centre inside the grid's (axis-aligned) outline must be covered, every other one not.
    rng = np.random.default_rng(3)
    n = 24
    gx, gy = np.meshgrid(np.arange(n + 1, dtype=np.float64), np.arange(n + 1, dtype=np.float64))
    jitter = rng.uniform(-0.3, 0.3, size=(2, n + 1, n + 1))
    jitter[:, [0, -1], :] = 0
    jitter[:, :, [0, -1]] = 0
    xs = 1400.3 + 7.31 * (gx + jitter[0])
    ys = 820.6 + 5.9 * (gy + jitter[1])
    verts = np.stack([xs.ravel(), ys.ravel(), 3.0 + 0.01 * rng.random(xs.size)], 1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    verts_px = torch.tensor(verts, dtype=torch.float32)[None]
    face_idx, _, _ = rasterize(verts_px, torch.from_numpy(faces), 1080, 1920)
    centres = _pixel_centres(1080, 1920)
    inside = ((centres[..., 0] > xs.min()) & (centres[..., 0] < xs.max()) & (centres[..., 1] > ys.min())
              & (centres[..., 1] < ys.max()))
    np.testing.assert_array_equal(face_idx[0].numpy() >= 0, inside)


def test_gradients_flow_to_vertices():
    verts = torch.tensor([[[1.0, 1.0, 2.0], [9.0, 1.5, 3.0], [2.0, 9.0, 2.5]]], requires_grad=True)
    _, bary, zbuf = rasterize(verts, torch.tensor([[0, 1, 2]]), 10, 10)
    zbuf[torch.isfinite(zbuf)].sum().backward()
    assert verts.grad is not None and verts.grad[..., 2].abs().sum() > 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='verts_px'):
        rasterize(torch.zeros(3, 3), torch.zeros(1, 3, dtype=torch.long), 4, 4)
    with pytest.raises(ValueError, match='faces'):
        rasterize(torch.zeros(1, 3, 3), torch.zeros(3, dtype=torch.long), 4, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_matches_cpu():
    verts, faces = uv_sphere(20, 24)
    v = torch.tensor(verts) * 0.8 + torch.tensor([0.1, 0.0, 3.0])
    proj = torch.stack([100 * v[:, 0] / v[:, 2] + 40, 100 * v[:, 1] / v[:, 2] + 30, v[:, 2]], 1)[None]
    cpu = rasterize(proj, torch.from_numpy(faces), 60, 80)
    gpu = rasterize(proj.cuda(), torch.from_numpy(faces).cuda(), 60, 80)
    assert torch.equal(cpu[0], gpu[0].cpu())
    torch.testing.assert_close(cpu[1], gpu[1].cpu(), atol=1e-5, rtol=1e-5)


def _reference_coverage(verts: np.ndarray, faces: np.ndarray, height: int, width: int, tol: float):
    """Brute force in float64: per pixel and face, the smallest screen barycentric and the depth.

    Returns ``(min_bary (H, W, F), depth (H, W, F))``; depth is inf where min_bary < -tol.
    """
    centres = _pixel_centres(height, width)
    min_bary = np.full((height, width, len(faces)), -np.inf)
    depth = np.full((height, width, len(faces)), np.inf)
    for f, tri in enumerate(verts[faces]):
        xy, z = tri[:, :2], tri[:, 2]
        area = (xy[1, 0] - xy[0, 0]) * (xy[2, 1] - xy[0, 1]) - (xy[1, 1] - xy[0, 1]) * (xy[2, 0] - xy[0, 0])
        if abs(area) < 1e-9 or (z <= 0).any():
            continue
        bary, _ = _inside_triangle(centres, xy)
        min_bary[..., f] = bary.min(-1)
        inv_depth = (bary / z).sum(-1)
        depth[..., f] = np.where(min_bary[..., f] >= -tol, 1.0 / inv_depth, np.inf)
    return min_bary, depth


@pytest.mark.parametrize('seed', range(4))
def test_random_triangles_match_a_brute_force_reference(seed):
    # Triangles of every size and shape (slivers, near-horizontal edges, partly off-screen, overlapping at
    # random depths) in float32: every covered pixel shows a face that covers it and is the nearest up to
    # round-off; every pixel that some face covers with a margin is covered.
    rng = np.random.default_rng(seed)
    height, width, num = 37, 53, 40
    centre = rng.uniform([-5, -5], [width + 5, height + 5], size=(num, 1, 2))
    scale = rng.choice([0.7, 3.0, 12.0, 40.0], size=(num, 1, 1))
    xy = centre + rng.normal(size=(num, 3, 2)) * scale
    xy[::7, 1, 1] = xy[::7, 0, 1] + 1e-4  # near-horizontal edges
    z = rng.uniform(1.0, 5.0, size=(num, 3, 1))
    verts = np.concatenate([xy, z], -1).reshape(-1, 3).astype(np.float32)
    faces = np.arange(3 * num).reshape(num, 3)
    face_idx, _, zbuf = rasterize(torch.from_numpy(verts)[None], torch.from_numpy(faces), height, width)
    face_idx, zbuf = face_idx[0].numpy(), zbuf[0].numpy()
    min_bary, depth = _reference_coverage(verts.astype(np.float64), faces, height, width, tol=1e-4)
    covered = face_idx >= 0
    rows, cols = np.nonzero(covered)
    assert covered.sum() > 200
    # The face shown covers the pixel, and nothing that surely covers it is clearly nearer.
    assert (min_bary[rows, cols, face_idx[covered]] >= -1e-4).all()
    surely = np.where(min_bary >= 1e-4, depth, np.inf).min(-1)
    assert (zbuf[covered] <= surely[covered] * (1 + 1e-4)).all()
    np.testing.assert_allclose(zbuf[covered], depth[rows, cols, face_idx[covered]], rtol=1e-4)
    assert not np.isfinite(surely[~covered]).any()
