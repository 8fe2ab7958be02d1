"""The stand-in body model: official formats and sizes, a closed mesh, valid skinning, anatomical
landmarks and joints, sane posing, DensePose-style UV data and real downsampling matrices."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from scipy.spatial.transform import Rotation

from tools.standin_body.preview import numpy_lbs
from utils.densepose_methods import load_densepose_uv
from utils.standin import ensure_standin

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
NOSE, LEYE, REYE, LEAR, REAR = 332, 2800, 6260, 583, 4071
L_BIG_TOE, L_SMALL_TOE, L_HEEL, R_BIG_TOE, R_SMALL_TOE, R_HEEL = 3216, 3226, 3387, 6617, 6624, 6787
L_TIPS, R_TIPS = [2746, 2319, 2445, 2556, 2673], [6191, 5782, 5905, 6016, 6133]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return ensure_standin(tmp_path_factory.mktemp('standin'))


@pytest.fixture(scope='module')
def neutral(data_dir):
    with open(data_dir / 'smpl' / 'SMPL_NEUTRAL.pkl', 'rb') as fh:
        return pickle.load(fh)


def lbs(model: dict, pose_aa: np.ndarray, betas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SMPL skinning of the pickle's arrays without pose correctives: pose_aa (24, 3) -> verts, joints."""
    v = model['v_template'] + (model['shapedirs'] @ betas if betas is not None else 0.0)
    return numpy_lbs(v, model['weights'], model['J_regressor'] @ v, pose_aa)


def edges_of(faces: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return e


def test_official_formats_and_sizes(data_dir, neutral):
    for name in ('SMPL_NEUTRAL.pkl', 'SMPL_MALE.pkl', 'SMPL_FEMALE.pkl'):
        with open(data_dir / 'smpl' / name, 'rb') as fh:
            model = pickle.load(fh)
        assert model['standin'] is True and 'NOT SMPL' in model['standin_note']
        assert model['v_template'].shape == (6890, 3)
        assert model['shapedirs'].shape == (6890, 3, 10)
        assert model['posedirs'].shape == (6890, 3, 207)
        assert isinstance(model['J_regressor'], sp.csc_matrix) and model['J_regressor'].shape == (24, 6890)
        assert model['weights'].shape == (6890, 24)
        assert model['f'].shape == (13776, 3) and model['f'].dtype == np.uint32
        assert model['J'].shape == (24, 3)
        parents = model['kintree_table'][0].copy()
        parents[0] = -1
        assert parents.tolist() == SMPL_PARENTS
        assert np.allclose(model['J'], model['J_regressor'] @ model['v_template'])
    assert np.load(data_dir / 'J_regressor_extra.npy').shape == (9, 6890)
    assert np.load(data_dir / 'J_regressor_h36m.npy').shape == (17, 6890)
    mean = np.load(data_dir / 'smpl_mean_params.npz')
    assert mean['pose'].shape == (144,) and mean['shape'].shape == (10,) and mean['cam'].shape == (3,)
    assert 'NOT SMPL' in (data_dir / 'STANDIN.md').read_text()
    assert 'NOT SMPL' in str(mean['standin_note'])
    assert 'NOT SMPL' in str(np.load(data_dir / 'mesh_downsampling.npz', allow_pickle=True)['standin_note'])
    assert 'STAND-IN' in str(scipy.io.loadmat(data_dir / 'UV_data' / 'UV_symmetry_transforms.mat')['standin_note'])


def test_mesh_is_closed_genus0_and_consistently_oriented(neutral):
    faces = neutral['f'].astype(np.int64)
    _, counts = np.unique(edges_of(faces), axis=0, return_counts=True)
    assert (counts == 2).all()
    assert 6890 - len(counts) + len(faces) == 2
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # each edge used once per direction
    assert len(np.unique(faces)) == 6890
    tri = neutral['v_template'][faces]
    signed_volume = np.einsum('fi,fi->f', tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    assert 0.04 < signed_volume < 0.12  # counter-clockwise seen from outside, as SMPL; a body's volume in m^3


def test_rest_body_is_a_t_pose_in_smpl_frame(neutral):
    v, j = neutral['v_template'], neutral['J']
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.5 < height < 1.9
    assert np.linalg.norm(j[0] - [0.0, -0.23, 0.0]) < 0.05  # pelvis where SMPL's is
    assert j[15, 1] > j[12, 1] > j[9, 1] > j[0, 1] > j[4, 1] > j[7, 1]  # y up
    assert j[16, 0] > 0.1 and j[17, 0] < -0.1  # left is +x
    for wrist, shoulder in ((20, 16), (21, 17)):  # arms horizontal
        arm = j[wrist] - j[shoulder]
        assert abs(arm[1]) < 0.08 * np.linalg.norm(arm) + 0.02 and abs(arm[0]) > 0.4
    assert v[NOSE, 2] > j[15, 2] + 0.05  # faces +z


def test_skinning_weights_and_joint_regressor_are_valid(neutral):
    w = neutral['weights']
    assert (w >= 0).all() and np.allclose(w.sum(1), 1.0)
    reg = neutral['J_regressor'].toarray()
    assert (reg >= 0).all() and np.allclose(reg.sum(1), 1.0)
    dominant = w.argmax(1)
    assert set(dominant.tolist()) == set(range(24))
    # The vertices a joint drives most lie around that joint.
    for joint in (4, 5, 18, 19, 15):
        near = neutral['v_template'][dominant == joint]
        assert np.linalg.norm(near.mean(0) - neutral['J'][joint]) < 0.25


def test_landmark_vertices_sit_at_their_landmarks(neutral):
    v, j = neutral['v_template'], neutral['J']
    assert v[NOSE, 2] > v[[LEYE, REYE], 2].max() and v[NOSE, 1] < v[[LEYE, REYE], 1].min()
    assert v[LEYE, 0] > 0.01 and v[REYE, 0] < -0.01 and v[LEAR, 0] > 0.05 and v[REAR, 0] < -0.05
    assert abs(v[NOSE, 0]) < 0.02 and j[12, 1] < v[NOSE, 1] < v[:, 1].max()
    for big, small, heel, ankle, sign in ((L_BIG_TOE, L_SMALL_TOE, L_HEEL, 7, 1),
                                          (R_BIG_TOE, R_SMALL_TOE, R_HEEL, 8, -1)):
        assert v[heel, 2] < j[ankle, 2] - 0.02 < v[big, 2] - 0.1  # heel behind, toes in front
        assert sign * (v[small, 0] - v[big, 0]) > 0.02  # small toe lateral to the big toe
        assert max(v[big, 1], v[heel, 1]) < j[ankle, 1]
    for tips, wrist, sign in ((L_TIPS, 20, 1), (R_TIPS, 21, -1)):
        assert (sign * v[tips, 0] > sign * j[wrist, 0] + 0.05).all()  # beyond the wrist
        assert sign * v[tips[2], 0] > sign * v[tips[0], 0]  # middle finger longer than the thumb


def test_extra_and_h36m_regressors_are_anatomical(data_dir, neutral):
    v, j = neutral['v_template'], neutral['J']
    extra = np.load(data_dir / 'J_regressor_extra.npy') @ v
    h36m = np.load(data_dir / 'J_regressor_h36m.npy') @ v
    r_hip, l_hip, neck, head_top, pelvis, thorax, spine, jaw, head = extra
    assert r_hip[0] < 0 < l_hip[0]
    assert head_top[1] > head[1] > jaw[1] > neck[1] > thorax[1] > spine[1] > pelvis[1]
    assert abs(head_top[1] - v[:, 1].max()) < 0.03
    assert h36m[1, 0] > 0 > h36m[4, 0] and h36m[11, 0] > 0 > h36m[14, 0]  # left side is +x
    assert np.linalg.norm(h36m[0] - j[0]) < 1e-6 and np.linalg.norm(h36m[16] - j[21]) < 1e-6


@pytest.mark.parametrize('pose_name', ['walk', 'arms_down', 'sit', 'mean_params'])
def test_posing_keeps_a_sane_body(data_dir, neutral, pose_name):
    pose = np.zeros((24, 3))
    if pose_name == 'walk':
        pose[1], pose[2], pose[4], pose[5] = [-0.5, 0, 0], [0.4, 0, 0], [0.3, 0, 0], [0.7, 0, 0]
        pose[16], pose[17] = [0, 0.2, -1.2], [0, 0.2, 1.2]
    elif pose_name == 'arms_down':
        pose[16], pose[17], pose[18], pose[19] = [0, 0, -1.4], [0, 0, 1.4], [0, -1.0, 0], [0, 1.0, 0]
    elif pose_name == 'sit':
        pose[1], pose[2], pose[4], pose[5] = [-1.5, 0, 0], [-1.5, 0, 0], [1.5, 0, 0], [1.5, 0, 0]
    else:
        rot6d = np.load(data_dir / 'smpl_mean_params.npz')['pose'].reshape(24, 3, 2)
        a, b = rot6d[..., 0], rot6d[..., 1]
        assert np.allclose(np.linalg.norm(a, axis=1), 1) and np.allclose((a * b).sum(1), 0)
        rot = np.stack([a, b, np.cross(a, b)], axis=-1)
        assert np.allclose(rot[0], np.diag([1.0, -1.0, -1.0]), atol=1e-6)  # y-up body into the y-down camera
        pose = Rotation.from_matrix(rot).as_rotvec()
    verts, _ = lbs(neutral, pose)
    rest = neutral['v_template']
    assert np.isfinite(verts).all()
    assert (verts.max(0) - verts.min(0)).max() < 2.0
    e = edges_of(neutral['f'].astype(np.int64))
    ratio = (np.linalg.norm(verts[e[:, 0]] - verts[e[:, 1]], axis=1)
             / np.linalg.norm(rest[e[:, 0]] - rest[e[:, 1]], axis=1))
    assert 0.9 < np.median(ratio) < 1.1
    assert np.quantile(ratio, 0.995) < 2.5 and np.quantile(ratio, 0.005) > 0.25


def test_shape_space_spans_plausible_bodies(data_dir):
    for name in ('SMPL_NEUTRAL.pkl', 'SMPL_MALE.pkl', 'SMPL_FEMALE.pkl'):
        with open(data_dir / 'smpl' / name, 'rb') as fh:
            model = pickle.load(fh)
        heights = []
        for k in range(10):
            for s in (-2.0, 2.0):
                betas = np.zeros(10)
                betas[k] = s
                v = model['v_template'] + model['shapedirs'] @ betas
                heights.append(v[:, 1].max() - v[:, 1].min())
        assert 1.3 < min(heights) and max(heights) < 2.15
        assert max(heights) - min(heights) > 0.15  # some directions change the height
        assert heights[1] > heights[0] + 0.1  # a positive first beta makes the body taller
    male = pickle.load(open(data_dir / 'smpl' / 'SMPL_MALE.pkl', 'rb'))['v_template']
    female = pickle.load(open(data_dir / 'smpl' / 'SMPL_FEMALE.pkl', 'rb'))['v_template']
    assert np.ptp(male[:, 1]) > np.ptp(female[:, 1])


def test_uv_data_maps_every_face_to_one_of_24_parts(data_dir, neutral):
    uv = load_densepose_uv(data_dir / 'UV_data' / 'UV_Processed.mat')
    mat = scipy.io.loadmat(data_dir / 'UV_data' / 'UV_Processed.mat')
    parts = mat['All_FaceIndices'].reshape(-1)
    assert mat['All_Faces'].shape == (13774, 3) and mat['All_vertices'].shape == (1, 7829)
    assert mat['All_U_norm'].shape == (7829, 1) and mat['All_V_norm'].shape == (7829, 1)
    assert set(parts.astype(int).tolist()) == set(range(1, 25))
    u, v = mat['All_U_norm'], mat['All_V_norm']
    assert u.min() >= 0 and u.max() <= 1 and v.min() >= 0 and v.max() <= 1
    # Every DensePose face is an SMPL face seen through the vertex map.
    dp_faces = mat['All_Faces'].astype(np.int64) - 1
    smpl_faces = mat['All_vertices'].reshape(-1).astype(np.int64)[dp_faces] - 1
    known = {tuple(np.roll(f, -np.argmin(f))) for f in neutral['f'].astype(np.int64)}
    assert all(tuple(np.roll(f, -np.argmin(f))) in known for f in smpl_faces)
    # Left and right parts mirror each other.
    centre_x = np.array([neutral['v_template'][smpl_faces[parts == p]].reshape(-1, 3).mean(0)[0] for p in range(1, 25)])
    for left, right in ((4, 3), (5, 6), (8, 7), (10, 9), (12, 11), (14, 13), (15, 16), (17, 18), (19, 20), (21, 22),
                        (24, 23)):
        assert centre_x[left - 1] > 0 > centre_x[right - 1]
    assert uv.faces.shape == (13774, 3) and uv.dp_to_smpl.max() == 6889 and len(np.unique(uv.dp_to_smpl)) == 6890
    sym = scipy.io.loadmat(data_dir / 'UV_data' / 'UV_symmetry_transforms.mat')
    assert sym['U_transforms'].shape == (1, 24) and sym['U_transforms'][0, 3].shape == (256, 256)


def test_downsampling_matrices_come_from_the_mesh(data_dir, neutral):
    ds = np.load(data_dir / 'mesh_downsampling.npz', allow_pickle=True, encoding='latin1')
    d0, d1, u0, u1 = ds['D'][0], ds['D'][1], ds['U'][0], ds['U'][1]
    assert d0.shape == (1723, 6890) and d1.shape == (431, 1723)
    assert u0.shape == (6890, 1723) and u1.shape == (1723, 431)
    assert [a.shape for a in ds['A']] == [(6890, 6890), (1723, 1723), (431, 431)]
    for m in (d0, d1, u0, u1):
        assert np.allclose(np.asarray(m.sum(1)).ravel(), 1.0)
    v = neutral['v_template']
    coarse = d1 @ (d0 @ v)
    assert np.abs(coarse.max(0) - v.max(0)).max() < 0.1 and np.abs(coarse.min(0) - v.min(0)).max() < 0.1
    up = u0 @ (d0 @ v)  # down then up: close to the original surface
    assert np.median(np.linalg.norm(up - v, axis=1)) < 0.01
    a0 = ds['A'][0]
    assert (a0 != a0.T).nnz == 0 and a0.nnz == 2 * 3 * 6890 - 12  # one entry per directed edge


def test_ensure_standin_is_idempotent(data_dir):
    path = data_dir / 'smpl' / 'SMPL_NEUTRAL.pkl'
    before = os.stat(path).st_mtime_ns
    assert ensure_standin(data_dir) == data_dir
    assert os.stat(path).st_mtime_ns == before


def test_missing_sources_and_bad_gender_give_helpful_errors(tmp_path):
    from utils.standin import smpl_dict
    with pytest.raises(FileNotFoundError, match='make_standin_body'):
        ensure_standin(tmp_path / 'out', asset_dir=tmp_path / 'nowhere')
    with pytest.raises(ValueError, match='gender'):
        smpl_dict('other')


def test_loads_through_the_project_smpl_layer(data_dir, neutral):
    import torch

    from models.smpl import SMPL
    pose = np.zeros((2, 24, 3))
    pose[1, 1], pose[1, 5], pose[1, 16] = [-0.5, 0, 0], [0.7, 0, 0], [0, 0.2, -1.2]
    betas = np.zeros((2, 10))
    betas[1, 0] = 1.5
    model = SMPL(str(data_dir / 'smpl'), gender='neutral', batch_size=2, create_transl=False)
    out = model(betas=torch.tensor(betas, dtype=torch.float32),
                body_pose=torch.tensor(pose[:, 1:].reshape(2, 69), dtype=torch.float32),
                global_orient=torch.tensor(pose[:, 0], dtype=torch.float32))
    assert out.vertices.shape == (2, 6890, 3) and out.joints.shape == (2, 49, 3)
    for b in range(2):
        expected, _ = lbs(neutral, pose[b], betas[b])
        assert np.abs(out.vertices[b].detach().numpy() - expected).max() < 1e-4
        # OpenPose nose, eyes and ears are the landmark vertices; joint 8 (MidHip) is the pelvis.
        joints = out.joints[b].detach().numpy()
        verts = out.vertices[b].detach().numpy()
        assert np.allclose(joints[[0, 15, 16, 17, 18]], verts[[NOSE, REYE, LEYE, REAR, LEAR]], atol=1e-5)
        assert np.allclose(joints[8], out.smpl_joints[b, 0].detach().numpy(), atol=1e-5)
        # The 24 ground-truth joints: hips from J_regressor_extra, ankles are SMPL's.
        assert np.allclose(joints[25], out.smpl_joints[b, 8].detach().numpy(), atol=1e-5)  # right ankle
        assert joints[27, 0] < 0 < joints[28, 0]  # right hip at -x, left hip at +x
        assert joints[38, 1] > joints[43, 1] > joints[42, 1]  # LSP head top, H36M head, jaw (body frame, y up)


def test_body_model_paths_fall_back_to_the_standin(tmp_path):
    from core.path_config import body_model_paths
    paths = body_model_paths(tmp_path)
    assert paths.is_standin
    for path in (paths.smpl_dir / 'SMPL_NEUTRAL.pkl', paths.smpl_mean_params, paths.joint_regressor_extra,
                 paths.joint_regressor_h36m, paths.mesh_downsampling, paths.uv_processed, paths.uv_symmetry):
        assert path.is_file(), path
