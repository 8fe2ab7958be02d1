"""The SMPL body model (Loper et al., SIGGRAPH Asia 2015) as the original PyMAF uses it.

Own linear-blend-skinning code (no smplx, no chumpy) with smplx 0.1.28's buffer names and layouts, so
that the released checkpoint's ``regressor.*.smpl.*`` entries load with ``strict=True``. The output
carries the original's 49 joints: 25 OpenPose joints and 24 "ground-truth" joints built from the SMPL
joints, 21 landmark vertices and the 9 rows of ``J_regressor_extra``.
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

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
        self._levels = _tree_levels(constants.SMPL_PARENTS)

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
            `SMPLOutput`, metres, in the frame the global orientation puts the body in.
        """
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
        v_shaped = self.v_template + torch.einsum('bl,mkl->bmk', betas, self.shapedirs)
        rest_joints = torch.einsum('jv,bvk->bjk', self.J_regressor, v_shaped)
        eye = torch.eye(3, dtype=dtype, device=rotmat.device)
        pose_feature = (rotmat[:, 1:] - eye).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).reshape(batch, -1, 3)
        transforms, posed_joints = self._rigid_transforms(rotmat, rest_joints)
        skin = (self.lbs_weights @ transforms.reshape(batch, NUM_JOINTS, 12)).reshape(batch, -1, 3, 4)
        vertices = torch.einsum('bvij,bvj->bvi', skin[..., :3], v_posed) + skin[..., 3]
        return vertices, posed_joints

    def _rigid_transforms(self, rotmat: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward kinematics, one tree level at a time.

        Returns:
            (B, 24, 3, 4) transforms mapping rest-pose points to posed points, and (B, 24, 3) posed joints.
        """
        parents = constants.SMPL_PARENTS
        rel_joints = joints.clone()
        rel_joints[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
        glob_rot_t = torch.empty_like(rotmat)
        glob_pos_t = torch.empty_like(joints)
        glob_rot_t[:, 0] = rotmat[:, 0]
        glob_pos_t[:, 0] = joints[:, 0]
        for level in self._levels:
            par = [parents[j] for j in level]
            prot = glob_rot_t[:, par]
            glob_rot_t[:, level] = prot @ rotmat[:, level]
            glob_pos_t[:, level] = glob_pos_t[:, par] + (prot @ rel_joints[:, level].unsqueeze(-1)).squeeze(-1)
        trans = glob_pos_t - (glob_rot_t @ joints.unsqueeze(-1)).squeeze(-1)
        return torch.cat([glob_rot_t, trans.unsqueeze(-1)], dim=-1), glob_pos_t


def get_smpl_faces(model_path: str | Path | None = None) -> np.ndarray:
    """(13776, 3) faces of the neutral model (the official one, else the stand-in)."""
    if model_path is None:
        from core.path_config import body_model_paths

        model_path = body_model_paths().smpl_dir
    return np.asarray(load_smpl_pickle(model_file(model_path, 'neutral'))['f'], dtype=np.int64)
