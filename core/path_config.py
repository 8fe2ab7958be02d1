"""Every file path the project reads, derived from one data root.

The data root is ``<repo>/data`` unless the environment variable ``PYMAF_DATA_DIR`` names another
folder. Each dataset root can be overridden by its own variable ``PYMAF_<NAME>_ROOT`` (upper case,
``-`` replaced by ``_``, e.g. ``PYMAF_3DPW_ROOT``). ``data/README.md`` lists every expected file.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get('PYMAF_DATA_DIR', REPO_DIR / 'data'))

# Body model and its companions (official files; see data/README.md for where they come from).
SMPL_MODEL_DIR = DATA_DIR / 'smpl'
SMPL_MEAN_PARAMS = DATA_DIR / 'smpl_mean_params.npz'
JOINT_REGRESSOR_TRAIN_EXTRA = DATA_DIR / 'J_regressor_extra.npy'
JOINT_REGRESSOR_H36M = DATA_DIR / 'J_regressor_h36m.npy'
MESH_DOWNSAMPLING = DATA_DIR / 'mesh_downsampling.npz'
UV_DATA_DIR = DATA_DIR / 'UV_data'
UV_PROCESSED = UV_DATA_DIR / 'UV_Processed.mat'
UV_SYMMETRY = UV_DATA_DIR / 'UV_symmetry_transforms.mat'
# SPIN's part colouring of the mesh faces (LSP part evaluation; see utils/part_utils.py).
CUBE_PARTS_FILE = DATA_DIR / 'cube_parts.npy'
VERTEX_TEXTURE_FILE = DATA_DIR / 'vertex_texture.npy'
STATIC_FITS_DIR = DATA_DIR / 'static_fits'
FINAL_FITS_DIR = DATA_DIR / 'final_fits'

# Pretrained weights.
PRETRAINED_DIR = DATA_DIR / 'pretrained_model'
PYMAF_CHECKPOINT = PRETRAINED_DIR / 'PyMAF_model_checkpoint.pt'
DEMO_WEIGHTS_DIR = REPO_DIR / 'assets' / 'demo_weights'  # the built-in demo weights (used without a checkpoint)
YOLO_WEIGHTS = PRETRAINED_DIR / 'yolov8n.pt'  # the demo's --detector yolo weights (ultralytics YOLOv8n)
RESNET50_IMAGENET = PRETRAINED_DIR / 'resnet50-19c8e357.pth'
RESNET18_IMAGENET = PRETRAINED_DIR / 'resnet18-f37072fd.pth'  # torchvision's ImageNet ResNet-18 (light backbone)
# Optional ImageNet weights of the HRNet backbones (MODEL.PyMAF.BACKBONE hr48 / hr32), standard HRNet layout.
HRNET_IMAGENET = {'hr48': PRETRAINED_DIR / 'hrnetv2_w48_imagenet_pretrained.pth',
                  'hr32': PRETRAINED_DIR / 'hrnetv2_w32_imagenet_pretrained.pth'}

# Where the project's stand-in body model is expanded when the official SMPL files are absent.
STANDIN_DATA_DIR = DATA_DIR / 'standin'

# SPIN-format annotation files and the image roots of each dataset.
DATASET_NPZ_PATH = DATA_DIR / 'dataset_extras'
DATASET_ROOT = DATA_DIR / 'datasets'

_DATASET_SUBDIRS = {
    'h36m': 'h36m',
    'lsp-orig': 'lsp_dataset_original',
    'lsp': 'lsp_dataset_small',
    'lspet': 'hr-lspet',
    'mpii': 'mpii',
    'coco': 'coco',
    'mpi-inf-3dhp': 'mpi_inf_3dhp',
    '3dpw': '3DPW',
    'upi-s1h': 'upi-s1h',
    'surreal': 'SURREAL',
    '3doh50k': '3DOH50K',
    'synthetic': 'synthetic',
}
# Dataset names that share another dataset's images.
_DATASET_ALIASES = {
    'h36m-p1': 'h36m', 'h36m-p2': 'h36m', 'h36m-p2-mosh': 'h36m',
    'dp_coco': 'coco', 'coco-full': 'coco', 'coco-hf': 'coco',
}


def _env_key(name: str) -> str:
    return 'PYMAF_' + name.upper().replace('-', '_') + '_ROOT'


def dataset_root(name: str) -> Path:
    """Image root of dataset ``name``: ``$PYMAF_<NAME>_ROOT`` or ``<data>/datasets/<folder>``."""
    base = _DATASET_ALIASES.get(name, name)
    for key in (name, base):
        if _env_key(key) in os.environ:
            return Path(os.environ[_env_key(key)])
    return DATASET_ROOT / _DATASET_SUBDIRS.get(base, base)


DATASET_FOLDERS = {name: dataset_root(name) for name in list(_DATASET_SUBDIRS) + list(_DATASET_ALIASES)}

# Annotation files: index 0 for evaluation, index 1 for training (the original's names).
DATASET_FILES = [
    {
        'h36m-p1': DATASET_NPZ_PATH / 'h36m_valid_protocol1_newpath.npz',
        'h36m-p2': DATASET_NPZ_PATH / 'h36m_valid_protocol2_newpath.npz',
        'h36m-p2-mosh': DATASET_NPZ_PATH / 'h36m_mosh_valid_p2.npz',
        'lsp': DATASET_NPZ_PATH / 'lsp_dataset_test.npz',
        'mpi-inf-3dhp': DATASET_NPZ_PATH / 'mpi_inf_3dhp_test.npz',
        '3dpw': DATASET_NPZ_PATH / '3dpw_test.npz',
        'coco': DATASET_NPZ_PATH / 'coco_2014_val.npz',
        'dp_coco': DATASET_NPZ_PATH / 'dp_coco_2014_minival.npz',
        'surreal': DATASET_NPZ_PATH / 'surreal_val.npz',
        '3doh50k': DATASET_NPZ_PATH / 'threeDOH50K_testset.npz',
        'synthetic': DATASET_NPZ_PATH / 'synthetic_test.npz',
    },
    {
        'h36m': DATASET_NPZ_PATH / 'h36m_mosh_train.npz',
        '3dpw': DATASET_NPZ_PATH / '3dpw_train.npz',
        'lsp-orig': DATASET_NPZ_PATH / 'lsp_dataset_original_train.npz',
        'mpii': DATASET_NPZ_PATH / 'mpii_train_eft.npz',
        'coco': DATASET_NPZ_PATH / 'coco_2014_train_eft.npz',
        'coco-full': DATASET_NPZ_PATH / 'coco-full_train_eft.npz',
        'dp_coco': DATASET_NPZ_PATH / 'dp_coco_2014_train.npz',
        'lspet': DATASET_NPZ_PATH / 'hr-lspet_train_eft.npz',
        'mpi-inf-3dhp': DATASET_NPZ_PATH / 'mpi_inf_3dhp_train.npz',
        'surreal': DATASET_NPZ_PATH / 'surreal_train.npz',
        '3doh50k': DATASET_NPZ_PATH / 'threeDOH50K_trainset.npz',
        'synthetic': DATASET_NPZ_PATH / 'synthetic_train.npz',
    },
]


@dataclass(frozen=True)
class BodyModelPaths:
    """The body-model files one run uses: the official ones, or the project's stand-in."""

    smpl_dir: Path
    smpl_mean_params: Path
    joint_regressor_extra: Path
    joint_regressor_h36m: Path
    mesh_downsampling: Path
    uv_processed: Path
    uv_symmetry: Path
    vertex_texture: Path
    cube_parts: Path
    is_standin: bool


_warned_standin = False


def body_model_paths(data_dir: str | os.PathLike | None = None, standin: bool = False) -> BodyModelPaths:
    """Official body-model files when ``smpl/SMPL_NEUTRAL.pkl`` exists, else the stand-in body model.

    The stand-in (a free body model in SMPL's formats, see docs/standin_body.md) is expanded into
    ``<data>/standin/`` on first use; it is announced once per process. ``standin=True`` selects it even
    when the official files exist (for weights trained on it, such as the built-in demo weights).
    """
    global _warned_standin
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    if (root / 'smpl' / 'SMPL_NEUTRAL.pkl').is_file() and not standin:
        base, is_standin = root, False
    else:
        from utils.standin import ensure_standin

        base, is_standin = ensure_standin(root / 'standin'), True
        if not _warned_standin and not standin:
            logger.warning('SMPL files not found in %s: using the project\'s stand-in body model (not SMPL; '
                           'see docs/standin_body.md and data/README.md to use the official files)',
                           root / 'smpl')
            _warned_standin = True
    return BodyModelPaths(
        smpl_dir=base / 'smpl',
        smpl_mean_params=base / 'smpl_mean_params.npz',
        joint_regressor_extra=base / 'J_regressor_extra.npy',
        joint_regressor_h36m=base / 'J_regressor_h36m.npy',
        mesh_downsampling=base / 'mesh_downsampling.npz',
        uv_processed=base / 'UV_data' / 'UV_Processed.mat',
        uv_symmetry=base / 'UV_data' / 'UV_symmetry_transforms.mat',
        vertex_texture=base / VERTEX_TEXTURE_FILE.name,
        cube_parts=base / CUBE_PARTS_FILE.name,
        is_standin=is_standin,
    )
