"""SMPL loading (official chumpy pickles without chumpy) and linear blend skinning."""
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from core import constants
from models.smpl import SMPL, load_smpl_pickle
from utils.geometry import batch_rodrigues


def _random_smpl(seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.random((6890, 24)) ** 4
    j_reg = rng.random((24, 6890)) * (rng.random((24, 6890)) > 0.99)
    return {
        'v_template': rng.normal(size=(6890, 3)) * 0.3,
        'shapedirs': rng.normal(size=(6890, 3, 10)) * 0.01,
        'posedirs': rng.normal(size=(6890, 3, 207)) * 0.001,
        'J_regressor': scipy.sparse.csc_matrix(j_reg / j_reg.sum(1, keepdims=True)),
        'weights': weights / weights.sum(1, keepdims=True),
        'kintree_table': np.stack([np.array([4294967295] + constants.SMPL_PARENTS[1:]),
                                   np.arange(24)]).astype(np.uint32),
        'f': rng.integers(0, 6890, size=(13776, 3)).astype(np.uint32),
    }


def _write_chumpy_style(path, data):
    """Pickle arrays as chumpy.ch.Ch objects, the way the official files are, using a fake chumpy."""
    ch_mod = types.ModuleType('chumpy.ch')

    class Ch:
        def __init__(self, x):
            self.x = x

        def __reduce__(self):
            return (Ch, (), {'x': self.x})

    Ch.__module__ = 'chumpy.ch'
    Ch.__qualname__ = 'Ch'
    ch_mod.Ch = Ch
    sys.modules['chumpy'] = types.ModuleType('chumpy')
    sys.modules['chumpy.ch'] = ch_mod
    try:
        chumpy_fields = ('v_template', 'shapedirs', 'posedirs', 'weights')
        wrapped = {k: (Ch(v) if k in chumpy_fields else v) for k, v in data.items()}
        with open(path, 'wb') as fh:
            pickle.dump(wrapped, fh, protocol=2)
    finally:
        del sys.modules['chumpy'], sys.modules['chumpy.ch']


@pytest.fixture()
def random_smpl_dir(tmp_path):
    data = _random_smpl()
    (tmp_path / 'smpl').mkdir()
    _write_chumpy_style(tmp_path / 'smpl' / 'SMPL_NEUTRAL.pkl', data)
    np.save(tmp_path / 'J_regressor_extra.npy', np.random.default_rng(1).random((9, 6890)).astype(np.float32) / 6890)
    return tmp_path, data


def test_chumpy_pickle_loads_without_chumpy(random_smpl_dir):
    root, data = random_smpl_dir
    assert 'chumpy' not in sys.modules
    loaded = load_smpl_pickle(root / 'smpl' / 'SMPL_NEUTRAL.pkl')
    assert np.allclose(loaded['shapedirs'], data['shapedirs'])
    assert scipy.sparse.issparse(loaded['J_regressor'])
    model = SMPL(root / 'smpl')
    assert model.posedirs.shape == (207, 20670) and model.shapedirs.shape == (6890, 3, 10)
    assert model.parents.tolist() == constants.SMPL_PARENTS


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='smpl.is.tue.mpg.de'):
        SMPL(tmp_path / 'smpl')


def test_lbs_matches_a_naive_reference(random_smpl_dir):
    root, data = random_smpl_dir
    model = SMPL(root / 'smpl')
    torch.manual_seed(0)
    betas = torch.randn(3, 10)
    pose_aa = torch.randn(3, 72) * 0.4
    out = model(betas, pose_aa[:, 3:], pose_aa[:, :3])
    assert out.vertices.shape == (3, 6890, 3) and out.joints.shape == (3, 49, 3) and out.smpl_joints.shape == (3, 24, 3)

    # Naive skinning, one joint and one sample at a time, straight from the SMPL paper.
    v_t = torch.tensor(data['v_template'], dtype=torch.float32)
    s_d = torch.tensor(data['shapedirs'], dtype=torch.float32)
    p_d = torch.tensor(data['posedirs'], dtype=torch.float32)
    j_r = torch.tensor(data['J_regressor'].toarray(), dtype=torch.float32)
    w = torch.tensor(data['weights'], dtype=torch.float32)
    for b in range(3):
        rot = batch_rodrigues(pose_aa[b].reshape(24, 3))
        v_shaped = v_t + (s_d * betas[b]).sum(-1)
        joints = j_r @ v_shaped
        v_posed = v_shaped + (p_d * (rot[1:] - torch.eye(3)).reshape(-1)).sum(-1)
        glob = []
        for j, parent in enumerate(constants.SMPL_PARENTS):
            local = torch.eye(4)
            local[:3, :3] = rot[j]
            local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
            glob.append(local if parent < 0 else glob[parent] @ local)
        glob = torch.stack(glob)
        rel = glob.clone()
        rel[:, :3, 3] -= (glob[:, :3, :3] @ joints[:, :, None])[..., 0]
        skin = torch.einsum('vj,jab->vab', w, rel)
        verts = (skin[:, :3, :3] @ v_posed[:, :, None])[..., 0] + skin[:, :3, 3]
        assert torch.allclose(out.vertices[b], verts, atol=1e-4)
        assert torch.allclose(out.smpl_joints[b], glob[:, :3, 3], atol=1e-5)
    # The 49 joints follow the joint map: OP MidHip is SMPL joint 0, OP Nose is vertex 332.
    assert torch.allclose(out.joints[:, 8], out.smpl_joints[:, 0])
    assert torch.allclose(out.joints[:, 0], out.vertices[:, 332])


def test_rotmat_input_equals_axis_angle_input(random_smpl_dir):
    model = SMPL(random_smpl_dir[0] / 'smpl')
    pose_aa = torch.randn(2, 72) * 0.3
    betas = torch.randn(2, 10)
    rotmat = batch_rodrigues(pose_aa.reshape(-1, 3)).reshape(2, 24, 3, 3)
    a = model(betas, pose_aa[:, 3:], pose_aa[:, :3]).vertices
    b = model(betas, rotmat[:, 1:], rotmat[:, :1], pose2rot=False).vertices
    assert torch.allclose(a, b, atol=1e-6)
