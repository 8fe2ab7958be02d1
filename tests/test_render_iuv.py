"""Tests of the DensePose UV reader, the IUV renderer and the IUV map conversions, on synthetic UV data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.io import savemat

from utils.densepose_methods import load_densepose_uv
from utils.geometry import projection
from utils.iuvmap import ANN_PART_GROUPS, iuv_img2map, iuv_map2img
from utils.render.iuv_renderer import IUV_Renderer
from utils.render.mesh_primitives import uv_sphere

FOCAL, CROP = 5000.0, 224


def _write_uv_mat(path, face_part, faces_0based, u, v, dp_to_smpl_0based):
    savemat(str(path), {
        'All_FaceIndices': np.asarray(face_part, np.float64).reshape(-1, 1),
        'All_Faces': np.asarray(faces_0based, np.float64) + 1,
        'All_U_norm': np.asarray(u, np.float64).reshape(-1, 1),
        'All_V_norm': np.asarray(v, np.float64).reshape(-1, 1),
        'All_vertices': np.asarray(dp_to_smpl_0based, np.float64).reshape(1, -1) + 1,
    })


def _project_px(points: np.ndarray, cam: np.ndarray, size: int) -> np.ndarray:
    """Pixel position in the size x size map of the model's weak-perspective projection of the points."""
    normalised = projection(torch.from_numpy(points)[None].double(), torch.from_numpy(cam)[None].double())
    return ((normalised[0] + 1) * size / 2).numpy()


def _inside(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = tri
    mat = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
    l12 = (points - a) @ np.linalg.inv(mat).T
    return (l12 >= 0).all(-1) & (l12.sum(-1) <= 1)


@pytest.fixture()
def quad_uv(tmp_path):
    """Two DensePose faces over 5 DensePose vertices (one a seam copy) copying 4 SMPL vertices."""
    dp_to_smpl = [10, 20, 30, 40, 30]  # DensePose vertex 4 copies SMPL vertex 30 with other U/V
    u = [0.1, 0.3, 0.5, 0.7, 0.9]
    v = [0.2, 0.4, 0.6, 0.8, 1.0]
    faces = [[0, 1, 2], [3, 4, 1]]
    path = tmp_path / 'UV_Processed.mat'
    _write_uv_mat(path, [3, 17], faces, u, v, dp_to_smpl)
    return path


def test_missing_uv_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='densepose_uv_data.tar.gz.*data/UV_data/UV_Processed.mat'):
        load_densepose_uv(tmp_path / 'nope.mat')


def test_reader_converts_to_zero_based_and_checks(quad_uv, tmp_path):
    data = load_densepose_uv(quad_uv)
    np.testing.assert_array_equal(data.dp_to_smpl, [10, 20, 30, 40, 30])
    np.testing.assert_array_equal(data.faces, [[0, 1, 2], [3, 4, 1]])
    np.testing.assert_array_equal(data.face_part, [3, 17])
    expected = [[3 / 24, 0.3, 0.4], [17 / 24, (0.7 + 0.9 + 0.3) / 3, (0.8 + 1.0 + 0.4) / 3]]
    np.testing.assert_allclose(data.face_texture(), expected, rtol=1e-6)
    np.testing.assert_array_equal(data.vertex_part(), [3, 3, 3, 17, 17])
    bad = tmp_path / 'bad.mat'
    savemat(str(bad), {'All_Faces': np.ones((2, 3))})
    with pytest.raises(ValueError, match='lacks'):
        load_densepose_uv(bad)


def test_iuv_map_matches_projected_faces(quad_uv):
    renderer = IUV_Renderer(quad_uv, output_size=56)
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(2, 6890, 3)).astype(np.float32) * 0.1
    corners = np.array([[-0.4, -0.5, 0.0], [0.5, -0.4, 0.1], [-0.3, 0.6, -0.1], [0.6, 0.5, 0.0]], np.float32)
    verts[:, [10, 20, 30, 40]] = corners
    cams = np.array([[0.9, 0.05, -0.1], [0.6, -0.2, 0.15]], np.float32)
    iuv = renderer(torch.from_numpy(verts), torch.from_numpy(cams)).numpy()
    assert iuv.shape == (2, 3, 56, 56) and iuv.dtype == np.float32
    ys, xs = np.mgrid[0:56, 0:56]
    centres = np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2)
    texture = load_densepose_uv(quad_uv).face_texture()
    for b in range(2):
        px = _project_px(corners, cams[b], 56)
        in_a = _inside(centres, px[[0, 1, 2]]).reshape(56, 56)
        in_b = _inside(centres, px[[3, 2, 1]]).reshape(56, 56)
        assert in_a.sum() > 50 and in_b.sum() > 50
        got = iuv[b].transpose(1, 2, 0)
        np.testing.assert_allclose(got[in_a & ~in_b], np.broadcast_to(texture[0], got[in_a & ~in_b].shape))
        np.testing.assert_allclose(got[in_b & ~in_a], np.broadcast_to(texture[1], got[in_b & ~in_a].shape))
        assert (got[~(in_a | in_b)] == 0).all()


def test_sphere_labels_where_its_faces_project(tmp_path):
    # A 6890-vertex sphere with DensePose vertex = SMPL vertex and 24 parts by azimuth sector: every label
    # pixel must show the part of a face whose projection contains that pixel centre.
    verts, faces = uv_sphere()
    centroid = verts[faces].mean(1)
    azimuth = np.arctan2(centroid[:, 2], centroid[:, 0]) % (2 * np.pi)
    face_part = 1 + np.floor(azimuth / (2 * np.pi) * 24).astype(int).clip(0, 23)
    path = tmp_path / 'UV_Processed.mat'
    _write_uv_mat(path, face_part, faces, np.linspace(0, 1, 6890), np.linspace(1, 0, 6890), np.arange(6890))
    renderer = IUV_Renderer(path, output_size=56)
    smpl_verts = (verts * 0.5)[None]
    cam = np.array([[0.8, 0.1, 0.0]], np.float32)
    iuv = renderer(torch.from_numpy(smpl_verts), torch.from_numpy(cam))[0].numpy()
    px = _project_px(smpl_verts[0], cam[0], 56)
    # Silhouette: the projected sphere is (nearly) a disc of radius = max distance of projected vertices.
    centre_px = _project_px(np.zeros((1, 3), np.float32), cam[0], 56)[0]
    radius = np.linalg.norm(px - centre_px, axis=1).max()
    ys, xs = np.mgrid[0:56, 0:56]
    dist = np.hypot(xs + 0.5 - centre_px[0], ys + 0.5 - centre_px[1])
    foreground = iuv[0] > 0
    assert foreground[dist < radius - 0.5].all() and not foreground[dist > radius + 0.5].any()
    # Labels: the part at each foreground pixel belongs to a front face containing the pixel centre.
    part_map = np.round(iuv[0] * 24).astype(int)
    front = centroid[:, 2] < 0  # the camera looks along +z, so the near hemisphere has z < 0
    face_px = px[faces][front]  # (F_front, 3, 2)
    a, b, c = face_px[:, 0], face_px[:, 1], face_px[:, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    fg_rows, fg_cols = np.nonzero(foreground)
    checked = 0
    for r, col in zip(fg_rows[::5], fg_cols[::5]):
        x, y = col + 0.5, r + 0.5
        l1 = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (y - a[:, 1]) * (c[:, 0] - a[:, 0])) / det
        l2 = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x - a[:, 0])) / det
        hits = (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
        if hits.any():
            checked += 1
            assert part_map[r, col] in face_part[front][hits]
    assert checked > 20


def test_empty_map_for_non_positive_scale(quad_uv):
    renderer = IUV_Renderer(quad_uv)
    verts = torch.zeros(2, 6890, 3)
    verts[:, [10, 20, 30, 40]] = torch.tensor([[-0.4, -0.5, 0.0], [0.5, -0.4, 0.0], [-0.3, 0.6, 0.0],
                                               [0.6, 0.5, 0.0]])
    iuv = renderer(verts, torch.tensor([[0.0, 0.0, 0.0], [-0.5, 0.0, 0.0]]))
    assert (iuv == 0).all()
    with pytest.raises(ValueError, match='cam'):
        renderer(verts, torch.zeros(3))


def test_iuv_img2map_and_back():
    rng = np.random.default_rng(1)
    part = rng.integers(0, 25, size=(2, 8, 9))
    u = rng.random((2, 8, 9)) * (part > 0)
    v = rng.random((2, 8, 9)) * (part > 0)
    iuv = torch.tensor(np.stack([part / 24, u, v], 1), dtype=torch.float32)
    index, ann, u_map, v_map = iuv_img2map(iuv)
    assert index.shape == (2, 25, 8, 9) and ann.shape == (2, 15, 8, 9) and u_map.shape == (2, 25, 8, 9)
    np.testing.assert_array_equal(index.argmax(1).numpy(), part)
    assert (index.sum(1) == 1).all() and (ann.sum(1) == 1).all()
    group_of = {p: g for g, parts in enumerate(ANN_PART_GROUPS) for p in parts}
    np.testing.assert_array_equal(ann.argmax(1).numpy(), np.vectorize(group_of.get)(part))
    np.testing.assert_allclose(u_map.sum(1).numpy(), u, rtol=1e-6, atol=1e-7)
    v_of_part = torch.gather(v_map, 1, index.argmax(1, keepdim=True))[:, 0].numpy()
    np.testing.assert_allclose(v_of_part, v, rtol=1e-6, atol=1e-7)
    back = iuv_map2img(u_map, v_map, index, ann)
    np.testing.assert_allclose(back.numpy(), iuv.numpy(), atol=1e-6)
    # A background coarse label masks the part.
    ann_bg = torch.zeros_like(ann)
    ann_bg[:, 0] = 1
    assert (iuv_map2img(u_map, v_map, index, ann_bg)[:, 0] == 0).all()


def test_standin_body_iuv_covers_its_silhouette():
    # The project's stand-in body (assets/standin, same sizes and file formats as SMPL and DensePose):
    # its IUV map must cover exactly the mesh's silhouette and show most of the 24 parts.
    from pathlib import Path

    from utils.render.renderer import PyRenderer

    assets = Path(__file__).resolve().parents[1] / 'assets' / 'standin'
    body = np.load(assets / 'body_neutral.npz')
    faces = np.load(assets / 'body_common.npz')['faces'].astype(np.int64)
    verts = body['v_template'] * np.array([1, -1, -1], np.float32)  # y up -> camera frame, facing the camera
    renderer = IUV_Renderer(assets / 'UV_data' / 'UV_Processed.mat', output_size=56)
    cam = np.array([0.9, 0.05, 0.1], np.float32)
    iuv = renderer(torch.from_numpy(verts)[None], torch.from_numpy(cam)[None])[0].numpy()
    # The same camera for the overlay renderer: focal 5000 * 56 / 224 in the 56 x 56 map.
    overlay = PyRenderer(faces, resolution=(56, 56), focal_length=FOCAL * 56 / CROP, cull_backfaces=False)
    silhouette = overlay.silhouette(verts, cam_t=[cam[1], cam[2], 2 * FOCAL / (CROP * cam[0])])
    foreground = iuv[0] > 0
    assert silhouette.sum() > 200
    assert (foreground != silhouette).sum() <= 0.01 * silhouette.sum()
    assert len(np.unique(np.round(iuv[0][foreground] * 24))) >= 15
    assert ((iuv[1:] >= 0) & (iuv[1:] <= 1)).all()
