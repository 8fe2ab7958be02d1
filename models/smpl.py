"""The SMPL body model (Loper et al., SIGGRAPH Asia 2015) as the original PyMAF uses it.

Own linear-blend-skinning code (no smplx, no chumpy) with smplx 0.1.28's buffer names and layouts, so
that the released checkpoint's ``regressor.*.smpl.*`` entries load with ``strict=True``. The output
carries the original's 49 joints: 25 OpenPose joints and 24 "ground-truth" joints built from the SMPL
joints, 21 landmark vertices and the 9 rows of ``J_regressor_extra``.

Quantities derived from the body-model buffers (the joint regressor applied to the template and shape
blend shapes) are cached with `cached_derivation`, which the other model files use as well: the cache is
a plain attribute, outside the state_dict, rebuilt when a source buffer is replaced or overwritten.
"""
from __future__ import annotations

import logging
import pickle
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from core import constants
from utils.geometry import batch_rodrigues

logger = logging.getLogger(__name__)

GENDER_FILES = {'neutral': 'SMPL_NEUTRAL.pkl', 'male': 'SMPL_MALE.pkl', 'female': 'SMPL_FEMALE.pkl'}
NUM_VERTS = 6890
NUM_FACES = 13776
NUM_JOINTS = 24
NUM_BETAS = 10

_SMPL_HELP = ('Register at https://smpl.is.tue.mpg.de, download SMPL for Python (v1.0.0, 10 shape '
              'components), and put the neutral model (from SMPLify: basicModel_neutral_lbs_10_207_0_v1.0.0.pkl) '
              'and the male and female models as {dir}/SMPL_NEUTRAL.pkl, SMPL_MALE.pkl and SMPL_FEMALE.pkl. '
              'Without them the project uses its stand-in body model (see data/README.md).')


class BufferStamp:
    """Which tensors (by identity) at which in-place version a derived value was computed from.

    ``load_state_dict`` copies into buffers in place (the version counter moves), ``.to()`` and
    ``.half()`` replace them (the identity changes): either makes `matches` false. Tensors are held by
    weak reference, so a stamp keeps nothing alive. Inference tensors have no version counter; a stamp
    over one never matches.
    """

    __slots__ = ('_refs', '_versions')

    def __init__(self, tensors: Sequence[torch.Tensor] = ()):
        if any(t.is_inference() for t in tensors):
            tensors = ()
            self._versions = None
        else:
            self._versions = tuple(t._version for t in tensors)
        self._refs = tuple(weakref.ref(t) for t in tensors)

    def matches(self, tensors: Sequence[torch.Tensor]) -> bool:
        return (self._versions is not None and len(tensors) == len(self._refs)
                and all(ref() is t for ref, t in zip(self._refs, tensors))
                and all(t._version == v for t, v in zip(tensors, self._versions)))

    def __reduce__(self):
        # Weak references do not pickle or deep-copy; a copy starts with an empty stamp.
        return BufferStamp, ()


def _exporting() -> bool:
    """Whether torch.export is tracing: its stand-in tensors never match a stamp, and a derivation computed
    from them would depend on data; a cache filled by an eager call beforehand is exported as a constant."""
    return torch.compiler.is_exporting()


def cached_derivation(owner: nn.Module, name: str, sources: Sequence[torch.Tensor],
                      compute: Callable[[], Any]) -> Any:
    """``compute()``, cached on ``owner`` as plain attribute ``name`` until a tensor in ``sources`` changes.

    The value is computed outside inference mode and without autograd, so it can serve later forward
    passes in any mode (train-mode autograd may save it for backward). Plain attributes stay out of the
    state_dict.
    """
    entry = owner.__dict__.get(name)
    if entry is not None and (entry[0].matches(sources) or _exporting()):
        return entry[1]
    with torch.inference_mode(False), torch.no_grad():
        value = compute()
    owner.__dict__[name] = (BufferStamp(sources), value)
    return value


class _ChumpyStub:
    """Takes the place of chumpy classes while unpickling; keeps the pickled state."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {'x': state}


class _SMPLUnpickler(pickle.Unpickler):
    """Unpickler that reads official SMPL files without chumpy and with old scipy module paths."""

    def find_class(self, module: str, name: str):
        if module.startswith('chumpy'):
            return _ChumpyStub
        if module.startswith('scipy.sparse'):
            import scipy.sparse

            return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def _to_numpy(value):
    if isinstance(value, _ChumpyStub):
        if 'x' not in value.state:
            raise ValueError('unsupported chumpy object in SMPL file (no array data)')
        return np.asarray(value.state['x'])
    return value


def load_smpl_pickle(path: str | Path) -> dict:
    """Read an SMPL ``.pkl`` (official chumpy-based or plain-numpy) into a dict of numpy/scipy arrays.

    Raises:
        FileNotFoundError: with where to obtain the file and where to put it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'SMPL model file {path} not found. ' + _SMPL_HELP.format(dir=path.parent))
    with open(path, 'rb') as fh:
        data = _SMPLUnpickler(fh, encoding='latin1').load()
    return {key: _to_numpy(value) for key, value in data.items()}


def _dense(array) -> np.ndarray:
    return np.asarray(array.todense() if hasattr(array, 'todense') else array, dtype=np.float32)


def model_file(model_path: str | Path, gender: str = 'neutral') -> Path:
    """The ``.pkl`` for ``gender`` given a file or the folder holding ``SMPL_{GENDER}.pkl``."""
    model_path = Path(model_path)
    if model_path.suffix == '.pkl':
        return model_path
    if gender not in GENDER_FILES:
        raise ValueError(f'gender must be one of {sorted(GENDER_FILES)}, got {gender!r}')
    return model_path / GENDER_FILES[gender]


@dataclass
class SMPLOutput:
    """SMPL forward result (B: batch).

    Attributes:
        vertices: (B, 6890, 3) metres.
        joints: (B, 49, 3) the original's 49 joints (25 OpenPose + 24 ground-truth joints).
        smpl_joints: (B, 24, 3) posed SMPL kinematic joints.
        joints_J19: (B, 19, 3) the 14 LSP joints plus nose, eyes and ears.
        rotmat: (B, 24, 3, 3) the joint rotations used.
        betas: (B, 10).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    smpl_joints: torch.Tensor
    joints_J19: torch.Tensor
    rotmat: torch.Tensor
    betas: torch.Tensor


class VertexJointSelector(nn.Module):
    """Holds the indices of the landmark vertices appended to the SMPL joints (smplx's name)."""

    def __init__(self):
        super().__init__()
        self.register_buffer('extra_joints_idxs', torch.tensor(constants.SMPL_VERTEX_JOINT_IDS, dtype=torch.long))

    def forward(self, vertices: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, V, 3), (B, J, 3) -> (B, J + 21, 3)."""
        return torch.cat([joints, vertices[:, self.extra_joints_idxs]], dim=1)


def _tree_levels(parents: list[int]) -> list[list[int]]:
    """Joints grouped by depth in the kinematic tree (root excluded), for batched forward kinematics."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [[j for j in range(1, len(parents)) if depth[j] == d] for d in range(1, max(depth) + 1)]


class SMPL(nn.Module):
    """SMPL with the original's 49-joint output.

    Args:
        model_path: folder with ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl`` or a ``.pkl`` file; ``None`` builds
            zero-filled buffers of the right shapes, to be filled by a checkpoint (the released PyMAF
            checkpoint carries the neutral model).
        gender: 'neutral', 'male' or 'female' (when ``model_path`` is a folder).
        batch_size: size of the unused pose/shape parameters smplx keeps (64 in the checkpoint).
        joint_regressor_extra: (9, 6890) ``.npy``; default ``<model folder>/../J_regressor_extra.npy``.
        create_transl: accepted for smplx compatibility; a translation parameter is never created.
    """

    def __init__(self, model_path: str | Path | None, gender: str = 'neutral', batch_size: int = 64,
                 joint_regressor_extra: str | Path | None = None, create_transl: bool = False, **kwargs):
        super().__init__()
        del create_transl, kwargs
        self.gender = gender
        if model_path is None:
            data = None
        else:
            path = model_file(model_path, gender)
            data = load_smpl_pickle(path)
            if joint_regressor_extra is None:
                joint_regressor_extra = path.parent.parent / 'J_regressor_extra.npy'
        # smplx keeps per-model pose/shape parameters; they are unused here but are in the checkpoint.
        self.betas = nn.Parameter(torch.zeros(batch_size, NUM_BETAS))
        self.global_orient = nn.Parameter(torch.zeros(batch_size, 3))
        self.body_pose = nn.Parameter(torch.zeros(batch_size, 69))

        if data is None:
            shapedirs = np.zeros((NUM_VERTS, 3, NUM_BETAS), np.float32)
            faces = np.zeros((NUM_FACES, 3), np.int64)
            v_template = np.zeros((NUM_VERTS, 3), np.float32)
            j_regressor = np.zeros((NUM_JOINTS, NUM_VERTS), np.float32)
            posedirs = np.zeros((NUM_VERTS * 3, 207), np.float32)
            parents = np.array(constants.SMPL_PARENTS, np.int64)
            weights = np.zeros((NUM_VERTS, NUM_JOINTS), np.float32)
            j_extra = np.zeros((9, NUM_VERTS), np.float32)
        else:
            shapedirs = np.asarray(data['shapedirs'], np.float32)
            if shapedirs.shape[-1] < NUM_BETAS:
                raise ValueError(f'{path} has {shapedirs.shape[-1]} shape components, PyMAF needs {NUM_BETAS}')
            shapedirs = shapedirs[:, :, :NUM_BETAS]
            faces = np.asarray(data['f'], np.int64)
            v_template = np.asarray(data['v_template'], np.float32)
            j_regressor = _dense(data['J_regressor'])
            posedirs = np.asarray(data['posedirs'], np.float32).reshape(-1, 207)
            parents = np.asarray(data['kintree_table'][0], np.int64).copy()
            parents[0] = -1
            weights = np.asarray(data['weights'], np.float32)
            j_extra = self._load_extra(joint_regressor_extra)
        self.register_buffer('shapedirs', torch.from_numpy(np.ascontiguousarray(shapedirs)))
        self.register_buffer('faces_tensor', torch.from_numpy(faces))
        self.register_buffer('v_template', torch.from_numpy(v_template))
        self.register_buffer('J_regressor', torch.from_numpy(j_regressor))
        self.register_buffer('posedirs', torch.from_numpy(np.ascontiguousarray(posedirs.T)))
        self.register_buffer('parents', torch.from_numpy(parents))
        self.register_buffer('lbs_weights', torch.from_numpy(weights))
        self.register_buffer('J_regressor_extra', torch.from_numpy(j_extra))
        self.vertex_joint_selector = VertexJointSelector()
        # Plain attribute, not a buffer: the checkpoint does not hold it.
        self.joint_map = torch.tensor(constants.JOINT_MAP, dtype=torch.long)
        self._fk_index_cache: dict[torch.device, tuple] = {}

    @staticmethod
    def _load_extra(path: str | Path | None) -> np.ndarray:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f'extra joint regressor {path} not found: it is part of the SPIN data '
                '(run fetch_data.sh, or copy J_regressor_extra.npy into the data folder; see data/README.md)')
        return np.load(path).astype(np.float32)

    @property
    def faces(self) -> np.ndarray:
        """(13776, 3) int64 triangle vertex indices."""
        return self.faces_tensor.cpu().numpy()

    def forward(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor,
                pose2rot: bool = True, **kwargs) -> SMPLOutput:
        """Pose and shape the body.

        Args:
            betas: (B, 10) shape coefficients.
            body_pose: (B, 69) axis-angle if ``pose2rot`` else (B, 23, 3, 3) rotation matrices.
            global_orient: (B, 3) axis-angle if ``pose2rot`` else (B, 1, 3, 3).
            pose2rot: whether the pose is axis-angle.

        Returns:
            `SMPLOutput`, metres, in the frame the global orientation puts the body in. The body model always
            runs in its buffers' precision (fp32), also inside a mixed-precision (autocast) region.
        """
        dtype = self.v_template.dtype
        with torch.autocast(device_type=betas.device.type, enabled=False):
            return self._forward(betas.to(dtype), body_pose.to(dtype), global_orient.to(dtype), pose2rot)

    def _forward(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor,
                 pose2rot: bool) -> SMPLOutput:
        batch = betas.shape[0]
        if pose2rot:
            pose_aa = torch.cat([global_orient.reshape(batch, 3), body_pose.reshape(batch, 69)], dim=1)
            rotmat = batch_rodrigues(pose_aa.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        else:
            rotmat = torch.cat([global_orient.reshape(batch, 1, 3, 3), body_pose.reshape(batch, 23, 3, 3)], dim=1)
        vertices, smpl_joints = self.lbs(betas, rotmat)
        joints54 = torch.cat([self.vertex_joint_selector(vertices, smpl_joints),
                              torch.einsum('jv,bvk->bjk', self.J_regressor_extra, vertices)], dim=1)
        joints = joints54[:, self.joint_map.to(vertices.device)]
        joints_j19 = joints[:, 25:][:, constants.J24_TO_J19]
        return SMPLOutput(vertices=vertices, joints=joints, smpl_joints=smpl_joints, joints_J19=joints_j19,
                          rotmat=rotmat, betas=betas)

    def _joint_basis(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``J_regressor`` applied to the template and to the shape blend shapes, cached.

        Joints are linear in the shaped vertices, so rest joints = ``J v_template + (J shapedirs) betas``
        without regressing all 6890 vertices each pass.

        Returns:
            (1, 72) template joints and (10, 72) joint shape directions, flattened (joint, xyz).
        """
        def compute():
            template = (self.J_regressor @ self.v_template).reshape(1, -1)
            dirs = torch.einsum('jv,vkl->ljk', self.J_regressor, self.shapedirs).reshape(NUM_BETAS, -1)
            return template, dirs
        return cached_derivation(self, '_joint_basis_cache', (self.J_regressor, self.v_template, self.shapedirs),
                                 compute)

    def lbs(self, betas: torch.Tensor, rotmat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear blend skinning.

        Args:
            betas: (B, 10). rotmat: (B, 24, 3, 3) local joint rotations.

        Returns:
            vertices (B, 6890, 3) and posed joints (B, 24, 3).
        """
        batch = betas.shape[0]
        dtype = self.v_template.dtype
        betas, rotmat = betas.to(dtype), rotmat.to(dtype)
        joints_template, joint_dirs = self._joint_basis()
        rest_joints = torch.addmm(joints_template, betas, joint_dirs).reshape(batch, NUM_JOINTS, 3)
        eye = torch.eye(3, dtype=dtype, device=rotmat.device)
        pose_feature = (rotmat[:, 1:] - eye).reshape(batch, -1)
        # Template + shape blend shapes + pose correctives, accumulated in two fused multiply-adds.
        v_shaped = torch.addmm(self.v_template.reshape(1, -1), betas, self.shapedirs.reshape(-1, NUM_BETAS).t())
        v_posed = torch.addmm(v_shaped, pose_feature, self.posedirs).reshape(batch, -1, 3)
        transforms, posed_joints = self._rigid_transforms(rotmat, rest_joints)
        skin = (self.lbs_weights @ transforms.reshape(batch, NUM_JOINTS, 12)).reshape(batch, -1, 3, 4)
        vertices = torch.einsum('bvij,bvj->bvi', skin[..., :3], v_posed) + skin[..., 3]
        return vertices, posed_joints

    def vertex_subset(self, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The body model's arrays restricted to vertices ``ids`` (S,), for `pose_vertex_subset`.

        Returns:
            template (1, 3S), shape directions (3S, 10), pose correctives (207, 3S) and skinning weights (S, 24),
            new contiguous tensors (a caller may keep them as buffers of its own).
        """
        ids = ids.to(self.v_template.device)
        cols = (ids[:, None] * 3 + torch.arange(3, device=ids.device)).reshape(-1)
        return (self.v_template[ids].reshape(1, -1).clone(), self.shapedirs[ids].reshape(-1, NUM_BETAS).contiguous(),
                self.posedirs[:, cols].contiguous(), self.lbs_weights[ids].contiguous())

    def pose_vertex_subset(self, betas: torch.Tensor, rotmat: torch.Tensor, subset: Sequence[torch.Tensor]
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear blend skinning of some vertices only: the rows of `lbs`'s vertices that ``subset`` (from
        `vertex_subset`) selects, computed without posing the rest of the mesh.

        Args:
            betas: (B, 10). rotmat: (B, 24, 3, 3) local joint rotations. subset: `vertex_subset`'s arrays.

        Returns:
            vertices (B, S, 3) and posed joints (B, 24, 3), metres.
        """
        batch = betas.shape[0]
        dtype = self.v_template.dtype
        betas, rotmat = betas.to(dtype), rotmat.to(dtype)
        template, shapedirs, posedirs, lbs_weights = subset
        joints_template, joint_dirs = self._joint_basis()
        rest_joints = torch.addmm(joints_template, betas, joint_dirs).reshape(batch, NUM_JOINTS, 3)
        eye = torch.eye(3, dtype=dtype, device=rotmat.device)
        pose_feature = (rotmat[:, 1:] - eye).reshape(batch, -1)
        v_shaped = torch.addmm(template, betas, shapedirs.t())
        v_posed = torch.addmm(v_shaped, pose_feature, posedirs).reshape(batch, -1, 3)
        transforms, posed_joints = self._rigid_transforms(rotmat, rest_joints)
        skin = (lbs_weights @ transforms.reshape(batch, NUM_JOINTS, 12)).reshape(batch, -1, 3, 4)
        vertices = torch.einsum('bvij,bvj->bvi', skin[..., :3], v_posed) + skin[..., 3]
        return vertices, posed_joints

    def _joint_vertices(self) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """The vertices the 49 joints read (landmark vertices and the extra regressor's support), cached.

        Returns:
            positions of the 21 landmark vertices among the S kept ones (21,), `vertex_subset`'s arrays of the
            S vertices, and the extra regressor on them (9, S).
        """
        def compute():
            landmarks = self.vertex_joint_selector.extra_joints_idxs.to(self.v_template.device)
            support = torch.nonzero(self.J_regressor_extra.abs().sum(0) > 0).reshape(-1)
            ids = torch.unique(torch.cat([landmarks, support]))
            return (torch.searchsorted(ids, landmarks), self.vertex_subset(ids),
                    self.J_regressor_extra[:, ids].contiguous())
        return cached_derivation(self, '_joint_vertices_cache', (self.J_regressor_extra, self.v_template,
                                                                 self.shapedirs, self.posedirs, self.lbs_weights),
                                 compute)

    def joints_only(self, betas: torch.Tensor, rotmat: torch.Tensor) -> torch.Tensor:
        """The 49 output joints without skinning the whole mesh (for fitting loops): only the vertices the
        joints read are posed. Equal to ``forward(...).joints``.

        Args:
            betas: (B, 10). rotmat: (B, 24, 3, 3) local joint rotations.

        Returns:
            (B, 49, 3) joints, metres.
        """
        pick, subset, extra = self._joint_vertices()
        vertices, posed_joints = self.pose_vertex_subset(betas, rotmat, subset)
        joints54 = torch.cat([posed_joints, vertices[:, pick], torch.einsum('jv,bvk->bjk', extra, vertices)], dim=1)
        return joints54[:, self.joint_map.to(vertices.device)]

    def _fk_indices(self, device: torch.device) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Parent of each non-root joint (23,), and (joints, their parents) per tree level, on ``device``."""
        if device not in self._fk_index_cache:
            parents = constants.SMPL_PARENTS
            # Normal tensors even when first built under inference mode: autograd may save them later.
            with torch.inference_mode(False):
                levels = [(torch.tensor(level, device=device), torch.tensor([parents[j] for j in level], device=device))
                          for level in _tree_levels(parents)]
                self._fk_index_cache[device] = (torch.tensor(parents[1:], device=device), levels)
        return self._fk_index_cache[device]

    def _rigid_transforms(self, rotmat: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward kinematics on homogeneous (4x4) transforms, one tree level (one matmul) at a time.

        Returns:
            (B, 24, 3, 4) transforms mapping rest-pose points to posed points, and (B, 24, 3) posed joints.
        """
        batch = rotmat.shape[0]
        parent_index, levels = self._fk_indices(rotmat.device)
        rel_joints = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parent_index]], dim=1)
        local = rotmat.new_zeros(batch, NUM_JOINTS, 4, 4)
        local[..., :3, :3] = rotmat
        local[..., :3, 3] = rel_joints
        local[..., 3, 3] = 1
        world = local.clone()
        for level, parents in levels:
            world[:, level] = world[:, parents] @ local[:, level]
        posed_joints = world[..., :3, 3].contiguous()
        trans = posed_joints - (world[..., :3, :3] @ joints.unsqueeze(-1)).squeeze(-1)
        return torch.cat([world[..., :3, :3], trans.unsqueeze(-1)], dim=-1), posed_joints


def get_smpl_faces(model_path: str | Path | None = None) -> np.ndarray:
    """(13776, 3) faces of the neutral model (the official one, else the stand-in)."""
    if model_path is None:
        from core.path_config import body_model_paths

        model_path = body_model_paths().smpl_dir
    return np.asarray(load_smpl_pickle(model_file(model_path, 'neutral'))['f'], dtype=np.int64)
