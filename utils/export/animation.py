"""Export demo results to animation tools: animated skinned glTF 2.0 (.glb), BVH and a tidy SMPL .npz.

One set of files per tracked person (see docs/export.md):

- ``person_<id>.glb``: the shaped rest mesh (T-pose, the person's mean shape baked in), the 24-joint
  skeleton, skin weights (the 4 largest SMPL weights per vertex, renormalised), inverse bind matrices
  and one animation with a rotation channel per joint and the root translation.
- ``person_<id>.bvh``: the same skeleton and motion; rotation channels ``Zrotation Yrotation Xrotation``
  (degrees, local rotation ``Rz @ Ry @ Rx``), the root with ``Xposition Yposition Zposition`` too.
- ``person_<id>_smpl.npz``: the SMPL parameters per frame with frame indices and times.

Axes and units: the demo's 3D results are in the camera frame (OpenCV: x right, y down, z forward, metres).
The exports use glTF's convention (y up, metres): the camera frame turned by 180 degrees about x, i.e.
``p_export = diag(1, -1, -1) @ p_cam``. The root translation is the body's full-image camera translation
``cam_t``, so a person walking across the frame moves across the scene; the camera is at the origin looking
down -z. Times are video times: frame ``f`` is at ``f / fps`` seconds.

The glTF mesh is skinned by plain linear blend skinning; SMPL's pose-corrective blend shapes are not
exported, so the mesh differs from the demo's ``verts`` by those small corrections. Joints are exact.
"""
from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.constants import SMPL_JOINT_NAMES, SMPL_PARENTS
from utils.export.results import load_output_pkl
from utils.geometry import batch_rodrigues, orig_cam_to_cam_t, rotation_matrix_to_quaternion, vertex_normals

logger = logging.getLogger(__name__)

FORMATS = ('glb', 'bvh', 'npz')
NUM_JOINTS = 24
# Camera frame (x right, y down, z forward) -> export frame (y up): 180 degrees about x.
CAM_TO_EXPORT = np.diag([1.0, -1.0, -1.0])
BVH_ROTATION_ORDER = 'ZYX'

_FLOAT, _UINT, _USHORT = 5126, 5125, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass
class PersonMotion:
    """One tracked person's SMPL parameters over the N frames it is in.

    Attributes:
        person_id: the id in the result file.
        frame_ids: (N,) int 0-based video frame indices, increasing.
        pose_aa: (N, 24, 3) axis-angle per SMPL joint, radians (joint 0: global orientation, camera frame).
        betas: (N, 10) shape coefficients.
        cam_t: (N, 3) translation of the body in the full-image camera, metres (camera frame).
    """

    person_id: int
    frame_ids: np.ndarray
    pose_aa: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray


@dataclass
class Rig:
    """A person's shaped rest body (T-pose, export frame = SMPL's template frame, y up, metres).

    Attributes:
        rest_verts: (V, 3) vertices. faces: (F, 3) int triangles. rest_joints: (24, 3) joint positions.
        parents: (24,) parent index per joint (-1 for the root).
        skin_joints: (V, 4) int joint indices and skin_weights: (V, 4) their weights (rows sum to 1).
        betas: (10,) the shape baked in.
    """

    rest_verts: np.ndarray
    faces: np.ndarray
    rest_joints: np.ndarray
    parents: np.ndarray
    skin_joints: np.ndarray
    skin_weights: np.ndarray
    betas: np.ndarray


@dataclass
class Animation:
    """Per-frame local joint transforms in the export frame.

    Attributes:
        times_s: (N,) seconds (``frame_ids / fps``). frame_ids: (N,) video frame indices.
        local_rotmat: (N, 24, 3, 3) joint rotations relative to the parent; joint 0's includes the
            camera-to-export axis change.
        root_pos: (N, 3) root joint position, metres, export frame.
    """

    times_s: np.ndarray
    frame_ids: np.ndarray
    local_rotmat: np.ndarray
    root_pos: np.ndarray


def load_demo_results(path: str | os.PathLike) -> tuple[dict[int, dict], dict[str, float]]:
    """Read a demo result file (``output.pkl`` or ``output.npz``) and what is known of the video.

    For ``output.pkl`` the video's ``fps`` and ``img_height`` come from the ``output.npz`` beside it,
    when there is one.

    Returns:
        ``{person_id: {'frame_ids', 'pose', 'betas', 'cam_t' (or None), 'orig_cam'}}`` and a dict with
        ``fps`` and ``img_height`` where known.

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a result file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'result file not found: {path} (run demo.py first; it writes output.pkl and '
                                'output.npz under output/<name>/)')
    meta: dict[str, float] = {}
    npz_path = path if path.suffix == '.npz' else path.with_name('output.npz')
    if npz_path.is_file():
        with np.load(npz_path, allow_pickle=False) as data:
            for key in ('fps', 'img_height', 'img_width'):
                if key in data.files:
                    meta[key] = float(data[key])
            if path.suffix == '.npz':
                missing = {'person_ids', 'frame_ids', 'pose', 'betas'} - set(data.files)
                if missing:
                    raise ValueError(f'{path} is not a demo output.npz: missing {sorted(missing)}')
                results = {}
                pids = data['person_ids']
                for pid in np.unique(pids):
                    rows = pids == pid
                    results[int(pid)] = {
                        key: data[key][rows] for key in ('frame_ids', 'pose', 'betas', 'cam_t', 'orig_cam')
                        if key in data.files and len(data[key]) == len(pids)}
                return results, meta
    return load_output_pkl(path), meta


def person_motions(results: dict[int, dict], img_height: float | None = None) -> list[PersonMotion]:
    """`PersonMotion` per person of a result dict, rows sorted by frame.

    Args:
        results: ``{person_id: person}`` as in output.pkl.
        img_height: image height in pixels; needed only for results without ``cam_t`` (the original
            demo's files), whose translation is then derived from ``orig_cam``.

    Raises:
        ValueError: a person without ``cam_t`` and no ``img_height`` given, or malformed arrays.
    """
    motions = []
    for pid in sorted(results):
        person = results[pid]
        pose = np.asarray(person['pose'], dtype=np.float64)
        if pose.ndim != 2 or pose.shape[1] != 72:
            raise ValueError(f'person {pid}: pose must be (N, 72) axis-angle, got {pose.shape}')
        cam_t = person.get('cam_t')
        if cam_t is None:
            if person.get('orig_cam') is None:
                raise ValueError(f'person {pid} has neither cam_t nor orig_cam: no root translation to export')
            if img_height is None:
                raise ValueError(f'person {pid} has no cam_t (a result of the original demo?): give the image '
                                 'height (--img_height) to derive the translation from orig_cam')
            cam_t = orig_cam_to_cam_t(person['orig_cam'], int(img_height))
        frame_ids = np.asarray(person['frame_ids'], dtype=np.int64).reshape(-1)
        order = np.argsort(frame_ids, kind='stable')
        repeated = np.unique(frame_ids[order][1:][np.diff(frame_ids[order]) == 0])
        if len(repeated):
            raise ValueError(f'person {pid} has several rows for frames {repeated.tolist()}; an animation needs '
                             'one pose per frame')
        motions.append(PersonMotion(
            person_id=int(pid), frame_ids=frame_ids[order], pose_aa=pose[order].reshape(-1, NUM_JOINTS, 3),
            betas=np.asarray(person['betas'], dtype=np.float64)[order],
            cam_t=np.asarray(cam_t, dtype=np.float64).reshape(-1, 3)[order]))
    return motions


def build_rig(smpl: torch.nn.Module, betas: np.ndarray) -> Rig:
    """The shaped T-pose body of the SMPL layer ``smpl`` (`models.smpl.SMPL`) for shape ``betas`` (10,)."""
    dtype, device = smpl.v_template.dtype, smpl.v_template.device
    betas_t = torch.as_tensor(np.asarray(betas).reshape(1, -1), dtype=dtype, device=device)
    identity = torch.eye(3, dtype=dtype, device=device).expand(1, NUM_JOINTS, 3, 3)
    with torch.no_grad():
        rest_verts, rest_joints = (x.cpu() for x in smpl.lbs(betas_t, identity))
    weights = smpl.lbs_weights.detach().cpu().numpy().astype(np.float64)
    top4 = np.argsort(-weights, axis=1)[:, :4]
    top4_weights = np.take_along_axis(weights, top4, axis=1)
    top4_weights /= np.maximum(top4_weights.sum(axis=1, keepdims=True), 1e-12)
    top4[top4_weights == 0] = 0  # glTF: unused joint slots should point to joint 0
    return Rig(rest_verts=rest_verts[0].double().numpy(), faces=smpl.faces_tensor.cpu().numpy().astype(np.int64),
               rest_joints=rest_joints[0].double().numpy(), parents=np.asarray(SMPL_PARENTS, dtype=np.int64),
               skin_joints=top4.astype(np.int64), skin_weights=top4_weights,
               betas=np.asarray(betas, dtype=np.float64).reshape(-1))


def animate(motion: PersonMotion, rig: Rig, fps: float) -> Animation:
    """Local joint rotations and root positions of ``motion`` on ``rig``, in the export frame (y up).

    The root joint's world position is ``CAM_TO_EXPORT @ (rest_root + cam_t)`` and its rotation
    ``CAM_TO_EXPORT @ R_global``, which places the body exactly where ``verts + cam_t`` is in the camera.
    """
    if fps <= 0:
        raise ValueError(f'fps must be positive, got {fps}')
    rotmat = batch_rodrigues(torch.as_tensor(motion.pose_aa.reshape(-1, 3), dtype=torch.float64))
    rotmat = rotmat.numpy().reshape(-1, NUM_JOINTS, 3, 3)
    rotmat[:, 0] = CAM_TO_EXPORT @ rotmat[:, 0]
    root_pos = (rig.rest_joints[0] + motion.cam_t) @ CAM_TO_EXPORT.T
    return Animation(times_s=motion.frame_ids / float(fps), frame_ids=motion.frame_ids, local_rotmat=rotmat,
                     root_pos=root_pos)


def _quaternions_xyzw(rotmat: np.ndarray) -> np.ndarray:
    """(N, 3, 3) -> (N, 4) unit quaternions ``[x, y, z, w]`` (glTF order), signs continuous over N."""
    quat = rotation_matrix_to_quaternion(torch.as_tensor(rotmat, dtype=torch.float64)).numpy()[:, [1, 2, 3, 0]]
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    for i in range(1, len(quat)):
        if np.dot(quat[i], quat[i - 1]) < 0:
            quat[i] = -quat[i]
    return quat


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals; a vertex with no face of non-zero area gets +y (glTF needs unit
    normals)."""
    normals = vertex_normals(torch.from_numpy(np.asarray(verts))[None], torch.from_numpy(np.asarray(faces)))[0].numpy()
    return np.where(np.linalg.norm(normals, axis=1, keepdims=True) > 0.5, normals, [0.0, 1.0, 0.0])


class _GltfBuffer:
    """Collects binary arrays into one buffer with bufferViews and accessors."""

    _TYPES = {1: 'SCALAR', 3: 'VEC3', 4: 'VEC4', 16: 'MAT4'}

    def __init__(self):
        self.chunks: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, width: int, target: int | None = None,
            with_bounds: bool = False) -> int:
        """Append ``array`` (rows of ``width`` components) and return its accessor index."""
        dtype = {_FLOAT: '<f4', _UINT: '<u4', _USHORT: '<u2'}[component]
        data = np.ascontiguousarray(np.asarray(array).reshape(-1, width).astype(dtype))
        raw = data.tobytes()
        view = {'buffer': 0, 'byteOffset': self.length, 'byteLength': len(raw)}
        if target is not None:
            view['target'] = target
        self.views.append(view)
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b'\0' * pad)
        self.length += len(raw) + pad
        accessor = {'bufferView': len(self.views) - 1, 'componentType': component, 'count': len(data),
                    'type': self._TYPES[width]}
        if with_bounds:
            accessor['min'] = data.min(axis=0).tolist()
            accessor['max'] = data.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def write_glb(path: str | os.PathLike, rig: Rig, anim: Animation, name: str = 'person') -> Path:
    """Write an animated skinned glTF 2.0 binary.

    Nodes 0..23 are the joints in SMPL order (named as `core.constants.SMPL_JOINT_NAMES`, rest
    translation = offset from the parent, no rest rotation), node 24 holds the skinned mesh. The single
    animation has LINEAR samplers at ``anim.times_s``: a rotation channel per joint and the root's translation.
    """
    buf = _GltfBuffer()
    position = buf.add(rig.rest_verts, _FLOAT, 3, _ARRAY_BUFFER, with_bounds=True)
    normal = buf.add(_vertex_normals(rig.rest_verts, rig.faces), _FLOAT, 3, _ARRAY_BUFFER)
    joints0 = buf.add(rig.skin_joints, _USHORT, 4, _ARRAY_BUFFER)
    weights_f32 = rig.skin_weights.astype(np.float32)
    weights_f32[:, 0] += np.float32(1.0) - weights_f32.sum(axis=1, dtype=np.float32)  # sums of 1 in float32
    weights0 = buf.add(weights_f32, _FLOAT, 4, _ARRAY_BUFFER)
    indices = buf.add(rig.faces.reshape(-1), _UINT, 1, _ELEMENT_ARRAY_BUFFER)
    inverse_bind = np.tile(np.eye(4), (NUM_JOINTS, 1, 1))
    inverse_bind[:, :3, 3] = -rig.rest_joints
    ibm = buf.add(inverse_bind.transpose(0, 2, 1).reshape(-1, 16), _FLOAT, 16)  # glTF matrices: column-major
    times = buf.add(anim.times_s, _FLOAT, 1, with_bounds=True)

    nodes = []
    for j in range(NUM_JOINTS):
        offset = rig.rest_joints[j] - (rig.rest_joints[rig.parents[j]] if j > 0 else 0.0)
        node = {'name': SMPL_JOINT_NAMES[j], 'translation': offset.tolist()}
        children = [c for c in range(NUM_JOINTS) if rig.parents[c] == j]
        if children:
            node['children'] = children
        nodes.append(node)
    nodes[0]['translation'] = anim.root_pos[0].tolist()
    nodes[0]['rotation'] = _quaternions_xyzw(anim.local_rotmat[:1, 0])[0].tolist()
    nodes.append({'name': f'{name}_mesh', 'mesh': 0, 'skin': 0})

    samplers, channels = [], []
    for j in range(NUM_JOINTS):
        output = buf.add(_quaternions_xyzw(anim.local_rotmat[:, j]), _FLOAT, 4)
        samplers.append({'input': times, 'output': output, 'interpolation': 'LINEAR'})
        channels.append({'sampler': len(samplers) - 1, 'target': {'node': j, 'path': 'rotation'}})
    samplers.append({'input': times, 'output': buf.add(anim.root_pos, _FLOAT, 3), 'interpolation': 'LINEAR'})
    channels.append({'sampler': len(samplers) - 1, 'target': {'node': 0, 'path': 'translation'}})

    gltf = {
        'asset': {'version': '2.0', 'generator': 'PyMAF re-implementation, utils/export/animation.py'},
        'scene': 0,
        'scenes': [{'name': name, 'nodes': [0, NUM_JOINTS]}],
        'nodes': nodes,
        'meshes': [{'name': f'{name}_body', 'primitives': [{
            'attributes': {'POSITION': position, 'NORMAL': normal, 'JOINTS_0': joints0, 'WEIGHTS_0': weights0},
            'indices': indices, 'material': 0, 'mode': 4}]}],
        'materials': [{'name': 'body', 'pbrMetallicRoughness': {
            'baseColorFactor': [0.65, 0.7, 0.8, 1.0], 'metallicFactor': 0.0, 'roughnessFactor': 0.8}}],
        'skins': [{'name': f'{name}_skeleton', 'joints': list(range(NUM_JOINTS)), 'skeleton': 0,
                   'inverseBindMatrices': ibm}],
        'animations': [{'name': f'{name}_motion', 'samplers': samplers, 'channels': channels}],
        'accessors': buf.accessors,
        'bufferViews': buf.views,
        'buffers': [{'byteLength': buf.length}],
    }
    json_bytes = json.dumps(gltf, separators=(',', ':')).encode('utf-8')
    json_bytes += b' ' * ((-len(json_bytes)) % 4)
    binary = b''.join(buf.chunks)
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<4sII', b'glTF', 2, total))
        f.write(struct.pack('<I4s', len(json_bytes), b'JSON') + json_bytes)
        f.write(struct.pack('<I4s', len(binary), b'BIN\0') + binary)
    return path


def _fill_frames(anim: Animation) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (T, 24, 3, 3) and root positions (T, 3) for every frame from the first to the last
    frame id; frames the person is missing from are interpolated (slerp, linear)."""
    from scipy.spatial.transform import Rotation, Slerp

    frames = np.arange(anim.frame_ids[0], anim.frame_ids[-1] + 1)
    if len(frames) == len(anim.frame_ids):
        return anim.local_rotmat, anim.root_pos
    rotmat = np.empty((len(frames), NUM_JOINTS, 3, 3))
    for j in range(NUM_JOINTS):
        slerp = Slerp(anim.frame_ids.astype(np.float64), Rotation.from_matrix(anim.local_rotmat[:, j]))
        rotmat[:, j] = slerp(frames.astype(np.float64)).as_matrix()
    root_pos = np.stack([np.interp(frames, anim.frame_ids, anim.root_pos[:, k]) for k in range(3)], axis=1)
    return rotmat, root_pos


def write_bvh(path: str | os.PathLike, rig: Rig, anim: Animation, fps: float) -> Path:
    """Write the motion as BVH: metres, y up (export frame), rotation channels ``Zrotation Yrotation
    Xrotation`` in degrees (local rotation ``Rz @ Ry @ Rx``), root ``OFFSET 0 0 0`` and absolute
    ``X/Y/Zposition`` channels. One frame per video frame from the person's first to last frame
    (``Frame Time`` = 1 / fps); frames the person is missing from are interpolated.
    """
    from scipy.spatial.transform import Rotation

    lines = ['HIERARCHY']
    order: list[int] = []
    rot_channels = ' '.join(f'{axis}rotation' for axis in BVH_ROTATION_ORDER)

    def emit(j: int, depth: int) -> None:
        pad = '\t' * depth
        children = [c for c in range(NUM_JOINTS) if rig.parents[c] == j]
        offset = np.zeros(3) if j == 0 else rig.rest_joints[j] - rig.rest_joints[rig.parents[j]]
        lines.append(f'{pad}{"ROOT" if j == 0 else "JOINT"} {SMPL_JOINT_NAMES[j]}')
        lines.append(f'{pad}{{')
        lines.append(f'{pad}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}')
        if j == 0:
            lines.append(f'{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}')
        else:
            lines.append(f'{pad}\tCHANNELS 3 {rot_channels}')
        order.append(j)
        for c in children:
            emit(c, depth + 1)
        if not children:
            end = 0.5 * offset if np.linalg.norm(offset) > 1e-6 else np.array([0.0, 0.05, 0.0])
            lines.extend([f'{pad}\tEnd Site', f'{pad}\t{{',
                          f'{pad}\t\tOFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}', f'{pad}\t}}'])
        lines.append(f'{pad}}}')

    emit(0, 0)
    rotmat, root_pos = _fill_frames(anim)
    euler_deg = Rotation.from_matrix(rotmat.reshape(-1, 3, 3)).as_euler(BVH_ROTATION_ORDER, degrees=True)
    euler_deg = euler_deg.reshape(len(rotmat), NUM_JOINTS, 3)
    lines += ['MOTION', f'Frames: {len(rotmat)}', f'Frame Time: {1.0 / fps:.8f}']
    for t in range(len(rotmat)):
        values = np.concatenate([root_pos[t], euler_deg[t, order].reshape(-1)])
        lines.append(' '.join(f'{v:.6f}' for v in values))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n')
    return path


def write_params_npz(path: str | os.PathLike, motion: PersonMotion, rig: Rig, anim: Animation, fps: float,
                     body_model: str) -> Path:
    """Write the person's SMPL parameters per frame (N rows) as a tidy ``.npz``.

    Arrays: ``frame_ids`` (N,), ``times_s`` (N,), ``global_orient`` (N, 3) and ``body_pose`` (N, 69)
    axis-angle (camera frame), ``betas`` (N, 10) per frame, ``betas_mean`` (10,) (the shape in the
    .glb/.bvh), ``transl_cam`` (N, 3) metres (SMPL ``transl``: ``verts + transl_cam`` in the camera frame),
    ``root_pos_export`` (N, 3) and ``rest_joints`` (24, 3) in the export frame, ``joint_names`` (24,),
    ``parents`` (24,), ``cam_to_export`` (3, 3); scalars ``fps``, ``person_id``, ``body_model``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pose = motion.pose_aa.reshape(-1, 72)
    np.savez_compressed(
        path, frame_ids=motion.frame_ids, times_s=anim.times_s, global_orient=pose[:, :3].astype(np.float32),
        body_pose=pose[:, 3:].astype(np.float32), betas=motion.betas.astype(np.float32),
        betas_mean=rig.betas.astype(np.float32), transl_cam=motion.cam_t.astype(np.float32),
        root_pos_export=anim.root_pos.astype(np.float32), rest_joints=rig.rest_joints.astype(np.float32),
        joint_names=np.asarray(SMPL_JOINT_NAMES), parents=rig.parents, cam_to_export=CAM_TO_EXPORT,
        fps=np.float64(fps), person_id=np.int64(motion.person_id), body_model=np.asarray(body_model))
    return path



def export_results(results: dict[int, dict], out_dir: str | os.PathLike, fps: float,
                   formats: tuple[str, ...] = FORMATS, *, smpl: torch.nn.Module,
                   img_height: float | None = None, body_model: str | None = None) -> list[Path]:
    """Write ``person_<id>.glb``, ``person_<id>.bvh`` and ``person_<id>_smpl.npz`` per person.

    Args:
        results: ``{person_id: person}`` as in output.pkl (needs ``pose``, ``betas``, ``frame_ids`` and
            ``cam_t``, or ``orig_cam`` with ``img_height``).
        out_dir: folder for the files (created).
        fps: frames per second of the video (frame ``f`` is at ``f / fps`` s).
        formats: any of ``FORMATS``.
        smpl: the SMPL layer (`models.build.load_body_model` gives the demo's).
        img_height: pixels; only for results without ``cam_t``.
        body_model: name stored in the .npz (default 'unknown').

    Returns:
        The written paths.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f'unknown export formats {sorted(unknown)}; choose from {list(FORMATS)}')
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f'fps must be a positive number, got {fps}')
    out_dir = Path(out_dir)
    written = []
    for motion in person_motions(results, img_height):
        if len(motion.frame_ids) == 0:
            continue
        rig = build_rig(smpl, motion.betas.mean(axis=0))
        anim = animate(motion, rig, fps)
        stem = f'person_{motion.person_id:04d}'
        if 'glb' in formats:
            written.append(write_glb(out_dir / f'{stem}.glb', rig, anim, name=stem))
        if 'bvh' in formats:
            written.append(write_bvh(out_dir / f'{stem}.bvh', rig, anim, fps))
        if 'npz' in formats:
            written.append(write_params_npz(out_dir / f'{stem}_smpl.npz', motion, rig, anim, fps,
                                            body_model or 'unknown'))
        logger.info('person %d: %d frames exported', motion.person_id, len(motion.frame_ids))
    return written
