"""Tests of the animation export (utils/export/animation.py, tools/export.py): the .glb and .bvh are read back with
small independent readers written here and must reproduce the body model's posed joints."""
from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import torch

from core.constants import SMPL_JOINT_NAMES, SMPL_PARENTS
from models.build import load_body_model
from tools.export import main as export_main
from utils.export.animation import CAM_TO_EXPORT
from utils.export.results import save_output_npz, save_output_pkl

FPS = 25.0
IMG_W, IMG_H = 640, 480
# Person 1 is missing from frame 6 (a tracking gap); person 2 is in three frames, person 3 in one.
FRAMES = {1: np.array([3, 4, 5, 7, 8]), 2: np.array([0, 1, 2]), 3: np.array([10])}


@pytest.fixture(scope='module')
def smpl():
    return load_body_model()[0]


def _person(smpl, frame_ids: np.ndarray, seed: int) -> dict:
    """Result rows for known poses: a fixed shape, random joint rotations, a walk across the frame."""
    rng = np.random.default_rng(seed)
    num = len(frame_ids)
    pose = rng.normal(0.0, 0.35, (num, 72))
    pose[:, :3] = rng.normal(0.0, 0.3, (num, 3)) + np.array([np.pi, 0.0, 0.0])
    pose[0, 3:] = 0.0  # one frame with only a global rotation: skinning is then exact
    betas = np.tile(rng.normal(0.0, 1.0, (1, 10)), (num, 1))
    cam_t = np.stack([np.linspace(-1.0, 1.0, num), np.full(num, 0.2), np.linspace(8.0, 10.0, num)], axis=1)
    with torch.no_grad():
        out = smpl(betas=torch.tensor(betas, dtype=torch.float32), body_pose=torch.tensor(pose[:, 3:]).float(),
                   global_orient=torch.tensor(pose[:, :3]).float())
    return {'pred_cam': np.zeros((num, 3)), 'orig_cam': np.zeros((num, 4)), 'verts': out.vertices.numpy(),
            'pose': pose.astype(np.float32), 'betas': betas.astype(np.float32), 'joints3d': out.joints.numpy(),
            'joints2d': None, 'bboxes': np.zeros((num, 4)), 'frame_ids': frame_ids, 'cam_t': cam_t.astype(np.float32),
            'kp2d_px': np.zeros((num, 49, 2)), 'smpl_joints': out.smpl_joints.numpy()}


@pytest.fixture(scope='module')
def exported(smpl, tmp_path_factory):
    """A result folder written by the demo's own save functions, exported with the CLI."""
    root = tmp_path_factory.mktemp('clip')
    results = {pid: _person(smpl, frames, seed=pid) for pid, frames in FRAMES.items()}
    expected = {pid: results[pid].pop('smpl_joints') for pid in results}
    save_output_pkl(results, root / 'output.pkl')
    save_output_npz(results, root / 'output.npz', IMG_W, IMG_H, FPS, smpl.faces)
    assert export_main([str(root / 'output.pkl'), '--out', str(root / 'export')]) == 0
    return root, results, expected


def _expected_export_joints(results, expected, pid) -> np.ndarray:
    """(N, 24, 3) posed SMPL joints placed in the camera (``+ cam_t``), turned into the export frame."""
    return (expected[pid] + results[pid]['cam_t'][:, None]) @ CAM_TO_EXPORT.T


def _read_glb(path):
    """Minimal GLB reader: (gltf json, accessor index -> numpy array)."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from('<4sII', data, 0)
    assert magic == b'glTF' and version == 2 and length == len(data)
    json_len, json_type = struct.unpack_from('<I4s', data, 12)
    assert json_type == b'JSON' and json_len % 4 == 0
    gltf = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from('<I4s', data, 20 + json_len)
    assert bin_type == b'BIN\0'
    binary = data[28 + json_len:28 + json_len + bin_len]
    assert gltf['buffers'][0]['byteLength'] <= bin_len

    def accessor(index: int) -> np.ndarray:
        acc = gltf['accessors'][index]
        view = gltf['bufferViews'][acc['bufferView']]
        dtype = {5126: '<f4', 5125: '<u4', 5123: '<u2'}[acc['componentType']]
        width = {'SCALAR': 1, 'VEC3': 3, 'VEC4': 4, 'MAT4': 16}[acc['type']]
        start = view['byteOffset'] + acc.get('byteOffset', 0)
        assert start % 4 == 0
        arr = np.frombuffer(binary, dtype=dtype, count=acc['count'] * width, offset=start)
        return arr.reshape(acc['count'], width) if width > 1 else arr

    return gltf, accessor


def _quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _glb_world_matrices(gltf, accessor, key: int) -> np.ndarray:
    """(num nodes, 4, 4) world matrices of all nodes at animation keyframe ``key`` (TRS hierarchy)."""
    nodes = gltf['nodes']
    local = []
    for node in nodes:
        m = np.eye(4)
        m[:3, :3] = _quat_xyzw_to_matrix(np.array(node.get('rotation', [0, 0, 0, 1.0])))
        m[:3, 3] = node.get('translation', [0, 0, 0])
        local.append(m)
    anim = gltf['animations'][0]
    for channel in anim['channels']:
        value = accessor(anim['samplers'][channel['sampler']]['output'])[key]
        node = channel['target']['node']
        if channel['target']['path'] == 'rotation':
            local[node][:3, :3] = _quat_xyzw_to_matrix(value.astype(np.float64))
        else:
            local[node][:3, 3] = value
    parent = {c: i for i, node in enumerate(nodes) for c in node.get('children', [])}
    world = [None] * len(nodes)

    def resolve(i):
        if world[i] is None:
            world[i] = local[i] if i not in parent else resolve(parent[i]) @ local[i]
        return world[i]

    return np.stack([resolve(i) for i in range(len(nodes))])


def test_glb_structure_and_trimesh_reads_it(exported, smpl):
    import trimesh

    root, results, _ = exported
    for pid, frames in FRAMES.items():
        path = root / 'export' / f'person_{pid:04d}.glb'
        gltf, accessor = _read_glb(path)
        skin = gltf['skins'][0]
        assert len(skin['joints']) == 24
        assert [gltf['nodes'][j]['name'] for j in skin['joints']] == SMPL_JOINT_NAMES
        assert accessor(skin['inverseBindMatrices']).shape == (24, 16)
        channels = gltf['animations'][0]['channels']
        assert sum(c['target']['path'] == 'rotation' for c in channels) == 24
        assert sum(c['target']['path'] == 'translation' for c in channels) == 1
        times = accessor(gltf['animations'][0]['samplers'][0]['input'])
        np.testing.assert_allclose(times, frames / FPS, rtol=1e-6)
        prim = gltf['meshes'][0]['primitives'][0]
        weights = accessor(prim['attributes']['WEIGHTS_0'])
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
        joints = accessor(prim['attributes']['JOINTS_0'])
        assert joints.max() < 24 and (joints[weights == 0] == 0).all()
        scene = trimesh.load(path, force='scene')
        mesh = next(iter(scene.geometry.values()))
        assert len(mesh.vertices) == len(smpl.v_template) and len(mesh.faces) == len(smpl.faces)


def test_glb_joints_equal_smpl_posed_joints(exported):
    root, results, expected = exported
    for pid in FRAMES:
        gltf, accessor = _read_glb(root / 'export' / f'person_{pid:04d}.glb')
        want = _expected_export_joints(results, expected, pid)
        for key in range(len(want)):
            world = _glb_world_matrices(gltf, accessor, key)
            np.testing.assert_allclose(world[:24, :3, 3], want[key], atol=2e-5)


def test_glb_skinning_matches_smpl_mesh(exported):
    """glTF skinning = SMPL's mesh exactly without body pose, and close to it (no pose-corrective blend
    shapes, 4 weights per vertex) with body pose: mean error under 1 cm."""
    root, results, _ = exported
    gltf, accessor = _read_glb(root / 'export' / 'person_0001.glb')
    prim = gltf['meshes'][0]['primitives'][0]
    rest = accessor(prim['attributes']['POSITION']).astype(np.float64)
    joints = accessor(prim['attributes']['JOINTS_0']).astype(np.int64)
    weights = accessor(prim['attributes']['WEIGHTS_0']).astype(np.float64)
    ibm = accessor(gltf['skins'][0]['inverseBindMatrices']).reshape(24, 4, 4).transpose(0, 2, 1)
    rest_h = np.concatenate([rest, np.ones((len(rest), 1))], axis=1)
    errors = []
    for key in range(len(results[1]['frame_ids'])):
        joint_mats = _glb_world_matrices(gltf, accessor, key)[:24] @ ibm
        skin = np.einsum('vk,vkij->vij', weights, joint_mats[joints])
        skinned = np.einsum('vij,vj->vi', skin, rest_h)[:, :3]
        want = (results[1]['verts'][key] + results[1]['cam_t'][key]) @ CAM_TO_EXPORT.T
        errors.append(np.linalg.norm(skinned - want, axis=1))
    assert errors[0].max() < 1e-4
    assert max(err.mean() for err in errors[1:]) < 0.01


def _read_bvh(path):
    """Minimal BVH reader: joints [(name, parent, offset, channels)], frame time, motion (T, C)."""
    tokens = path.read_text().split()
    joints, stack, i = [], [], 0
    assert tokens[i] == 'HIERARCHY'
    i += 1
    while tokens[i] != 'MOTION':
        tok = tokens[i]
        if tok in ('ROOT', 'JOINT'):
            joints.append([tokens[i + 1], stack[-1] if stack else -1, None, []])
            i += 2
        elif tok == 'End':
            joints.append(['<end>', stack[-1], None, []])
            i += 2
        elif tok == '{':
            stack.append(len(joints) - 1)
            i += 1
        elif tok == '}':
            stack.pop()
            i += 1
        elif tok == 'OFFSET':
            joints[stack[-1]][2] = np.array([float(t) for t in tokens[i + 1:i + 4]])
            i += 4
        elif tok == 'CHANNELS':
            count = int(tokens[i + 1])
            joints[stack[-1]][3] = tokens[i + 2:i + 2 + count]
            i += 2 + count
        else:
            raise AssertionError(f'unexpected token {tok}')
    assert tokens[i + 1] == 'Frames:' and tokens[i + 3:i + 5] == ['Frame', 'Time:']
    num_frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    motion = np.array([float(t) for t in tokens[i + 6:]]).reshape(num_frames, -1)
    return joints, frame_time, motion


def _axis_rotation(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {'X': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), 'Y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'Z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def _bvh_positions(joints, values: np.ndarray) -> dict[str, np.ndarray]:
    """World positions of the named joints for one motion row (channels applied in the listed order)."""
    world, out, col = [], {}, 0
    for name, parent, offset, channels in joints:
        local = np.eye(4)
        local[:3, 3] = offset
        for channel in channels:
            step = np.eye(4)
            if channel.endswith('position'):
                step[{'X': 0, 'Y': 1, 'Z': 2}[channel[0]], 3] = values[col]
            else:
                step[:3, :3] = _axis_rotation(channel[0], values[col])
            local = local @ step
            col += 1
        world.append(local if parent < 0 else world[parent] @ local)
        out[name] = world[-1][:3, 3]
    assert col == len(values)
    return out


def test_bvh_reproduces_smpl_joints(exported):
    root, results, expected = exported
    for pid, frames in FRAMES.items():
        joints, frame_time, motion = _read_bvh(root / 'export' / f'person_{pid:04d}.bvh')
        names = [j[0] for j in joints if j[0] != '<end>']
        assert sorted(names) == sorted(SMPL_JOINT_NAMES)
        parents = {j[0]: joints[j[1]][0] for j in joints if j[1] >= 0 and j[0] != '<end>'}
        assert all(parents[SMPL_JOINT_NAMES[c]] == SMPL_JOINT_NAMES[SMPL_PARENTS[c]] for c in range(1, 24))
        assert joints[0][3] == ['Xposition', 'Yposition', 'Zposition', 'Zrotation', 'Yrotation', 'Xrotation']
        assert frame_time == pytest.approx(1.0 / FPS)
        assert len(motion) == frames[-1] - frames[0] + 1  # the gap is filled
        want = _expected_export_joints(results, expected, pid)
        for k, frame in enumerate(frames):
            got = _bvh_positions(joints, motion[frame - frames[0]])
            np.testing.assert_allclose(np.stack([got[n] for n in SMPL_JOINT_NAMES]), want[k], atol=1e-4)


def test_params_npz(exported):
    root, results, _ = exported
    with np.load(root / 'export' / 'person_0001_smpl.npz') as data:
        np.testing.assert_array_equal(data['frame_ids'], FRAMES[1])
        np.testing.assert_allclose(data['times_s'], FRAMES[1] / FPS)
        np.testing.assert_allclose(np.concatenate([data['global_orient'], data['body_pose']], axis=1),
                                   results[1]['pose'], atol=1e-6)
        np.testing.assert_allclose(data['transl_cam'], results[1]['cam_t'], atol=1e-6)
        assert data['betas'].shape == (5, 10) and float(data['fps']) == FPS
        assert list(data['joint_names']) == SMPL_JOINT_NAMES


def test_cli_original_format_and_errors(exported, tmp_path, capsys):
    """A result without cam_t (the original demo's) uses orig_cam and the image height; npz input works;
    a missing frame rate or file is an ``error:`` line and status 1."""
    root, results, _ = exported
    person = dict(results[2])
    del person['cam_t']
    cam_t = person_cam_t = results[2]['cam_t'].astype(np.float64)
    sy = 2 * 5000.0 / (IMG_H * cam_t[:, 2])
    person['orig_cam'] = np.stack([sy, sy, person_cam_t[:, 0], person_cam_t[:, 1]], axis=1)
    save_output_pkl({2: person}, tmp_path / 'output.pkl')
    assert export_main([str(tmp_path / 'output.pkl'), '--fps', str(FPS), '--formats', 'npz']) == 1
    assert 'img_height' in capsys.readouterr().err
    assert export_main([str(tmp_path / 'output.pkl'), '--fps', str(FPS), '--img_height', str(IMG_H),
                        '--formats', 'npz']) == 0
    with np.load(tmp_path / 'export' / 'person_0002_smpl.npz') as data:
        np.testing.assert_allclose(data['transl_cam'], cam_t, rtol=1e-5)
    assert export_main([str(root / 'output.npz'), '--out', str(tmp_path / 'from_npz'), '--formats', 'bvh']) == 0
    assert sorted(p.name for p in (tmp_path / 'from_npz').iterdir()) == [f'person_{p:04d}.bvh' for p in FRAMES]
    assert (tmp_path / 'from_npz' / 'person_0001.bvh').read_text() == (root / 'export' / 'person_0001.bvh').read_text()
    (tmp_path / 'alone').mkdir()
    save_output_pkl({2: results[2]}, tmp_path / 'alone' / 'output.pkl')
    assert export_main([str(tmp_path / 'alone' / 'output.pkl')]) == 1
    assert re.search(r'error: .*--fps', capsys.readouterr().err)
    assert export_main([str(tmp_path / 'missing.pkl'), '--fps', '30']) == 1


def test_body_model_from_checkpoint(smpl, exported, tmp_path):
    """A checkpoint's SMPL arrays (as the released one carries) give the skeleton, not the files under data/."""
    root, _, _ = exported
    state = {f'regressor.0.smpl.{name}': getattr(smpl, name).clone() for name in
             ('v_template', 'shapedirs', 'J_regressor', 'posedirs', 'lbs_weights', 'parents', 'faces_tensor')}
    state['regressor.0.smpl.v_template'] *= 1.1
    torch.save({'model': state}, tmp_path / 'ckpt.pt')
    assert export_main([str(root / 'output.pkl'), '--out', str(tmp_path / 'out'), '--formats', 'npz',
                        '--checkpoint', str(tmp_path / 'ckpt.pt')]) == 0
    with np.load(tmp_path / 'out' / 'person_0001_smpl.npz') as data, \
            np.load(root / 'export' / 'person_0001_smpl.npz') as plain:
        assert str(data['body_model']) == 'checkpoint_neutral'
        # rest joints = J (v_template + shapedirs betas): the scaled template adds 0.1 J v_template.
        template_joints = (smpl.J_regressor @ smpl.v_template).numpy()
        np.testing.assert_allclose(data['rest_joints'], plain['rest_joints'] + 0.1 * template_joints, atol=1e-5)
    torch.save({'model': {'backbone.w': torch.zeros(1)}}, tmp_path / 'other.pt')
    assert export_main([str(root / 'output.pkl'), '--out', str(tmp_path / 'out2'),
                        '--checkpoint', str(tmp_path / 'other.pt')]) == 1


def test_bad_rows_are_explained(smpl, tmp_path):
    from utils.export.animation import export_results

    person = _person(smpl, np.array([0, 1, 1]), seed=5)
    with pytest.raises(ValueError, match='several rows for frames \\[1\\]'):
        export_results({1: person}, tmp_path, FPS, smpl=smpl)
    person = _person(smpl, np.array([0, 1]), seed=5)
    person['cam_t'] = None
    person['orig_cam'] = None
    with pytest.raises(ValueError, match='neither cam_t nor orig_cam'):
        export_results({1: person}, tmp_path, FPS, smpl=smpl)
    with pytest.raises(ValueError, match='unknown export formats'):
        export_results({1: person}, tmp_path, FPS, formats=('fbx',), smpl=smpl)
