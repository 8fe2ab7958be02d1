"""Tests of the shaded overlay renderer (`utils.render.renderer.PyRenderer`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from utils.geometry import vertex_normals
from utils.render.mesh_primitives import uv_sphere
from utils.render.renderer import COLORS, PyRenderer, rotate_about_vertical

FOCAL = 500.0
HEIGHT, WIDTH = 96, 128


@pytest.fixture(scope='module')
def ellipsoid():
    verts, faces = uv_sphere(16, 24)
    return verts * np.array([0.3, 0.8, 0.2], dtype=np.float32), faces


def _project(verts_cam: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.stack([FOCAL * verts_cam[:, 0] / verts_cam[:, 2] + width / 2,
                     FOCAL * verts_cam[:, 1] / verts_cam[:, 2] + height / 2], 1)


def _pixel_centres(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2)


def test_silhouette_matches_projected_vertices(ellipsoid):
    verts, faces = ellipsoid
    cam_t = np.array([0.1, -0.05, 6.0], dtype=np.float32)
    renderer = PyRenderer(faces, resolution=(WIDTH, HEIGHT), focal_length=FOCAL)
    mask = renderer.silhouette(verts, cam_t=cam_t)
    # A convex mesh projects onto the convex hull of its projected vertices.
    hull = Delaunay(_project(verts + cam_t))
    expected = (hull.find_simplex(_pixel_centres()) >= 0).reshape(HEIGHT, WIDTH)
    assert expected.sum() > 500
    assert (mask != expected).sum() <= 2  # pixel centres lying exactly on the outline may go either way


def test_overlay_keeps_frame_outside_and_colours_inside(ellipsoid):
    verts, faces = ellipsoid
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    renderer = PyRenderer(faces, focal_length=FOCAL)
    cam_t = np.array([0.0, 0.0, 6.0])
    out = renderer(verts, frame=frame, cam_t=cam_t)
    mask = renderer.silhouette(verts, cam_t=cam_t, image_size=(HEIGHT, WIDTH))
    assert out.dtype == np.uint8 and out.shape == frame.shape
    np.testing.assert_array_equal(out[~mask], frame[~mask])
    # Inside, the colour is the shaded purple: a positive multiple of (0.55, 0.4, 0.9) up to rounding.
    inside = out[mask].astype(np.float64)
    ratio = inside / (255.0 * np.array(COLORS['purple']))
    assert np.all(ratio.std(axis=1) < 0.02) and ratio.mean() > 0.3
    assert inside.std(axis=0).max() > 5  # shading varies over the surface
    black = renderer(verts, frame=frame, cam_t=cam_t, empty_bg=True)
    assert (black[~mask] == 0).all()
    np.testing.assert_array_equal(black[mask], out[mask])


def test_two_meshes_nearer_in_front_regardless_of_order(ellipsoid):
    verts, faces = ellipsoid
    renderer = PyRenderer(faces, resolution=(WIDTH, HEIGHT), focal_length=FOCAL)
    near_t, far_t = np.array([0.0, 0.0, 5.0]), np.array([0.25, 0.0, 5.5])
    for order in (0, 1):
        ts = [near_t, far_t] if order == 0 else [far_t, near_t]
        colors = ['green', 'blue'] if order == 0 else ['blue', 'green']  # near one is always green
        out = renderer(np.stack([verts, verts]), cam_t=np.stack(ts), colors=colors)
        near_mask = renderer.silhouette(verts, cam_t=near_t)
        far_mask = renderer.silhouette(verts, cam_t=far_t)
        overlap = near_mask & far_mask
        assert overlap.sum() > 100
        px = out[overlap].astype(np.float64)
        # Green (0.5, 0.85, 0.55) has G > B; blue (0.45, 0.6, 0.95) has B > G.
        assert (px[:, 1] > px[:, 2]).all()
        only_far = far_mask & ~near_mask
        assert (out[only_far][:, 2] > out[only_far][:, 1]).all()


def test_side_view_rotates_about_vertical_axis(ellipsoid):
    verts, faces = ellipsoid
    renderer = PyRenderer(faces, resolution=(WIDTH, HEIGHT), focal_length=FOCAL)
    cam_t = np.array([0.0, 0.0, 6.0])
    front = renderer.silhouette(verts, cam_t=cam_t)
    rotated = rotate_about_vertical(torch.tensor(verts + cam_t)[None], 90.0)[0].numpy()
    side = renderer(verts, cam_t=cam_t, side_view=True, side_view_deg=90.0) > 0
    expected = renderer.silhouette(rotated)
    np.testing.assert_array_equal(side.any(-1), expected)
    # The ellipsoid is 0.6 m wide and 0.4 m deep: seen from the side it is narrower.
    assert expected.any(0).sum() < front.any(0).sum()
    np.testing.assert_allclose(rotated.mean(0), (verts + cam_t).mean(0), atol=1e-5)


def test_render_scale_approximates_full_resolution(ellipsoid):
    verts, faces = ellipsoid
    cam_t = np.array([0.0, 0.0, 6.0])
    full = PyRenderer(faces, resolution=(WIDTH, HEIGHT), focal_length=FOCAL).silhouette(verts, cam_t=cam_t)
    for scale in (0.5, 2.0):
        scaled = PyRenderer(faces, resolution=(WIDTH, HEIGHT), focal_length=FOCAL, render_scale=scale)
        mask = scaled.silhouette(verts, cam_t=cam_t)
        iou = (mask & full).sum() / (mask | full).sum()
        assert iou > 0.93


def test_reduced_and_supersampled_rendering_equal_resampled_renders(ellipsoid):
    # render_scale 0.5 = a half-size render upsampled bilinearly; render_scale 2 = a double-size render
    # averaged over 2x2 blocks. Both only touch the region around the mesh, which must not change the result.
    verts, faces = ellipsoid
    cam_t = np.array([0.05, 0.0, 6.0])
    for scale in (0.5, 2):
        scaled = PyRenderer(faces, focal_length=FOCAL, render_scale=scale)
        rgb, alpha = scaled.render_rgba(verts, cam_t, image_size=(HEIGHT, WIDTH))
        size = (int(HEIGHT * scale), int(WIDTH * scale))
        direct = PyRenderer(faces, focal_length=FOCAL * scale, principal_point=(size[1] / 2, size[0] / 2))
        rgb_d, alpha_d = direct.render_rgba(verts, cam_t, image_size=size)
        rgba_d = torch.cat([rgb_d, alpha_d[..., None]], -1).permute(2, 0, 1)[None]
        if scale < 1:
            expected = torch.nn.functional.interpolate(rgba_d, size=(HEIGHT, WIDTH), mode='bilinear',
                                                       align_corners=False)
        else:
            expected = torch.nn.functional.avg_pool2d(rgba_d, 2)
        expected = expected[0].permute(1, 2, 0)
        np.testing.assert_allclose(rgb.numpy(), expected[..., :3].numpy(), atol=1e-5)
        np.testing.assert_allclose(alpha.numpy(), expected[..., 3].numpy(), atol=1e-5)
        assert ((alpha > 0) & (alpha < 1)).any()  # soft edges


def test_vertex_normals_point_outwards():
    verts, faces = uv_sphere(10, 12)
    normals = vertex_normals(torch.tensor(verts)[None], torch.tensor(faces))[0].numpy()
    np.testing.assert_allclose((normals * verts).sum(1), 1.0, atol=0.05)


def test_bad_inputs_raise(ellipsoid):
    verts, faces = ellipsoid
    renderer = PyRenderer(faces)
    with pytest.raises(ValueError, match='colour'):
        renderer(verts, cam_t=[0, 0, 5], colors='chartreuse')
    with pytest.raises(ValueError, match='frame'):
        renderer(verts, frame=np.zeros((4, 4), np.uint8), cam_t=[0, 0, 5])
    with pytest.raises(ValueError, match='render_scale'):
        PyRenderer(faces, render_scale=1.5)
    with pytest.raises(ValueError, match='cam_t'):
        renderer(np.stack([verts] * 3), cam_t=np.zeros((2, 3)))
    empty = renderer([], frame=np.full((8, 8, 3), 7, np.uint8))
    assert (empty == 7).all()


def _reference_overlay(verts_cam: np.ndarray, faces: np.ndarray, rgb: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The overlay computed the plain way in float64: a z-buffer loop over faces, then per pixel the
    perspective-correct barycentrics, the interpolated vertex normal and point, two-sided Lambertian light.

    Args:
        verts_cam: (N, V, 3) camera-frame vertices; faces: (F, 3); rgb: (N, 3) colours; frame: background.
    """
    from utils.render.renderer import DEFAULT_AMBIENT, DEFAULT_LIGHTS

    height, width = frame.shape[:2]
    num, num_verts = verts_cam.shape[:2]
    points = verts_cam.reshape(-1, 3)
    all_faces = (faces[None] + num_verts * np.arange(num)[:, None, None]).reshape(-1, 3)
    px = FOCAL * points[:, :2] / points[:, 2:] + np.array([width / 2, height / 2])
    corners = points[all_faces]
    face_n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(points)
    for k in range(3):
        np.add.at(normals, all_faces[:, k], face_n)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    zbuf = np.full((height, width), np.inf)
    best_face = np.full((height, width), -1)
    best_bary = np.zeros((height, width, 3))
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    for f, (i, j, k) in enumerate(all_faces):
        a, b, c = px[i], px[j], px[k]
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) < 1e-12:
            continue
        l0 = ((c[0] - b[0]) * (ys - b[1]) - (c[1] - b[1]) * (xs - b[0])) / area
        l1 = ((a[0] - c[0]) * (ys - c[1]) - (a[1] - c[1]) * (xs - c[0])) / area
        l2 = 1.0 - l0 - l1
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        persp = np.stack([l0 / points[i, 2], l1 / points[j, 2], l2 / points[k, 2]], -1)
        depth = 1.0 / persp.sum(-1)
        nearer = inside & (depth < zbuf)
        zbuf[nearer], best_face[nearer] = depth[nearer], f
        best_bary[nearer] = persp[nearer] * depth[nearer, None]
    out = frame.copy()
    covered = best_face >= 0
    ids = all_faces[best_face[covered]]
    bary = best_bary[covered][..., None]
    n = (normals[ids] * bary).sum(1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    p = (points[ids] * bary).sum(1)
    n = np.where((n * p).sum(1, keepdims=True) > 0, -n, n)
    light = np.zeros(len(n))
    for direction, intensity in DEFAULT_LIGHTS:
        light += intensity * np.clip(n @ (np.array(direction) / np.linalg.norm(direction)), 0, None)
    shade = np.minimum(DEFAULT_AMBIENT + light, 1.0)
    colour = rgb[best_face[covered] // len(faces)] * shade[:, None]
    out[covered] = np.floor(colour * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize('side_view', [False, True])
def test_overlay_matches_a_plain_reference_computation(ellipsoid, side_view):
    # Two interpenetrating meshes in front of a random frame: the fast renderer (culling, sparse z-buffer,
    # shading on covered pixels only) must draw the same picture as the plain float64 computation.
    verts, faces = ellipsoid
    frame = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cam_t = np.array([[0.05, 0.02, 6.0], [0.3, -0.1, 6.1]])
    colors = ['green', 'blue']
    renderer = PyRenderer(faces, focal_length=FOCAL)
    out = renderer(np.stack([verts, verts]), frame=frame, cam_t=cam_t, colors=colors, side_view=side_view)
    verts_cam = torch.from_numpy(np.stack([verts, verts]) + cam_t[:, None]).double()
    if side_view:
        verts_cam = rotate_about_vertical(verts_cam, 270.0)
    expected = _reference_overlay(verts_cam.numpy(), faces, np.array([COLORS[c] for c in colors]), frame)
    diff = np.abs(out.astype(int) - expected.astype(int)).max(-1)
    changed = (expected != frame).any(-1)
    assert changed.sum() > 1500
    # Pixel centres exactly on an outline or a crossing of the meshes may go either way; nothing else moves
    # by more than one level of rounding.
    assert (diff > 1).sum() <= 3
    assert (diff == 1).sum() <= 0.002 * changed.sum()


@pytest.mark.parametrize('render_scale', [1.0, 0.5])
def test_drawing_into_a_canvas_panel_or_in_place(ellipsoid, render_scale):
    verts, faces = ellipsoid
    frame = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cam_t = np.array([0.1, 0.0, 6.0])
    renderer = PyRenderer(faces, focal_length=FOCAL, render_scale=render_scale)
    expected = renderer(verts, frame=frame, cam_t=cam_t)
    side = renderer(verts, frame=frame, cam_t=cam_t, empty_bg=True, side_view=True)
    canvas = np.full((HEIGHT, 2 * WIDTH, 3), 9, np.uint8)
    assert renderer(verts, frame=frame, cam_t=cam_t, out=canvas[:, :WIDTH]) is not None
    renderer(verts, frame=frame, cam_t=cam_t, empty_bg=True, side_view=True, out=canvas[:, WIDTH:])
    np.testing.assert_array_equal(canvas, np.concatenate([expected, side], axis=1))
    in_place = frame.copy()
    assert renderer(verts, frame=in_place, cam_t=cam_t, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, expected)
    with pytest.raises(ValueError, match='out must be'):
        renderer(verts, frame=frame, cam_t=cam_t, out=canvas)
