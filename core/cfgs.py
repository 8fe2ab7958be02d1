"""The yacs configuration: defaults equal to the original's code defaults plus configs/pymaf_config.yaml.

``get_cfg_defaults()`` returns a fresh clone of the code defaults; ``load_cfg(cfg_file, misc)`` returns a
new node of the repository's configuration (configs/pymaf_config.yaml, or ``cfg_file``) with the
``--misc KEY VALUE`` overrides. There is no shared, mutable config: scripts build a node and pass it to
whatever needs it (models, trainer, evaluation). Nodes are strict: an unknown key in a YAML file or in
``--misc`` is an error naming the key.
"""
from __future__ import annotations

import os
from pathlib import Path

from yacs.config import CfgNode as CN

from utils.cli import InputError

_C = CN()
_C.LOGDIR = ''                     # training log folder (set by train.py; recorded in the run's cfg.yaml)
_C.VAL_VIS_BATCH_FREQ = 200        # visualise every N validation batches
_C.TRAIN_VIS_ITER_FERQ = 1000      # visualise every N training steps (the original's spelling)
_C.SEED_VALUE = -1                 # seed python/numpy/torch when >= 0

_C.SOLVER = CN()
_C.SOLVER.TYPE = 'Adam'            # optimiser: 'Adam' (the original's) or 'SGD'
_C.SOLVER.MOMENTUM = 0.9           # SGD momentum (SOLVER.TYPE 'SGD' only)
_C.SOLVER.BASE_LR = 0.00005        # learning rate
_C.SOLVER.GAMMA = 0.1              # learning-rate decay factor at each epoch in SOLVER.EPOCHS[1:]
_C.SOLVER.EPOCHS = [0]             # decay epochs from index 1 on; [0] means no decay (the released setting)

_C.TRAIN = CN()
_C.TRAIN.VAL_LOOP = True           # validate every feedback iteration's output, not only the last
_C.TRAIN.NUM_WORKERS = 16          # data-loader workers
_C.TRAIN.BATCH_SIZE = 64           # batch size (divided among processes under DDP)
_C.TRAIN.PIN_MEMORY = True         # pinned host memory for the data loader
_C.TRAIN.LOG_FREQ = 100            # write the loss scalars to TensorBoard every N steps (the original's 100)
_C.TRAIN.SAVE_EVERY = 1            # also keep model_epoch_<e>.pt (weights only) every N epochs (0: latest and best)
_C.TRAIN.VIS_SAMPLES = 16          # samples per TensorBoard image grid (the original's 16)
_C.TRAIN.AMP = 'none'              # forward precision: 'none' (fp32), 'bf16' (where native, else fp32), 'fp16' (CUDA)
_C.TRAIN.CHANNELS_LAST = False     # channels-last memory format for the model and the images
_C.TRAIN.GRAD_CLIP = 0.0           # clip the gradients' global L2 norm to this before each step (0: off, the original)
_C.TRAIN.SYNC_BN = True            # synchronised batch norm across processes (CUDA only; CPU runs keep plain BN)
_C.TRAIN.BAD_SAMPLE_POLICY = 'skip'  # unreadable sample or non-finite loss: 'skip' (report, count, go on) or 'stop'
_C.TRAIN.MAX_SKIPPED = 1000        # with 'skip', stop once more samples/steps than this were skipped (-1: never)
_C.TRAIN.MIXED_PARTITION = 'eft'   # mixed-data ratios: 'eft' (0.5 H36M / 0.3 in-the-wild / 0.2 MPI-INF) or 'conference'
_C.TRAIN.FITS_DIR = ''             # folder of SMPL fits (<dataset>.npy/.npz) replacing the 2D sets' labels; '' = none

_C.TEST = CN()
_C.TEST.BATCH_SIZE = 32            # evaluation batch size

_C.LOSS = CN()
_C.LOSS.KP_2D_W = 300.0            # 2D keypoint loss weight
_C.LOSS.KP_3D_W = 300.0            # 3D keypoint loss weight
_C.LOSS.SHAPE_W = 0.06             # SMPL betas loss weight
_C.LOSS.POSE_W = 60.0              # SMPL rotation-matrix loss weight
_C.LOSS.VERT_W = 0.0               # vertex loss weight (0: off, as released)
_C.LOSS.INDEX_WEIGHTS = 2.0        # defined but never applied by the original (IUV index CE has weight 1)
_C.LOSS.PART_WEIGHTS = 0.3         # defined but never applied by the original (IUV part CE has weight 1)
_C.LOSS.POINT_REGRESSION_WEIGHTS = 0.5  # IUV U/V regression weight
_C.LOSS.APPLY_IUV_CE_WEIGHTS = False  # False as released (IUV index/part CE weight 1); True applies the two above

_C.MODEL = CN()
_C.MODEL.PyMAF = CN()
_C.MODEL.PyMAF.BACKBONE = 'res50'  # 'res50' (ResNet-50, the paper's), 'res18' (light), 'hr48' or 'hr32' (HRNet)
_C.MODEL.PyMAF.BACKBONE_WIDTH = 64  # ResNet stem/first-stage channels (64 standard; e.g. 32 halves every stage)
_C.MODEL.PyMAF.HIDDEN_DIM = 1024  # width of the regressors' two fc layers (1024 in the original)
_C.MODEL.PyMAF.MLP_DIM = [256, 128, 64, 5]  # MAF extractor channels (input first, sampled output last)
_C.MODEL.PyMAF.MAF_LAST_OP = 'relu'  # MAF extractor output: 'relu' (original) or 'leaky_relu' (no dead outputs)
_C.MODEL.PyMAF.N_ITER = 3          # feedback iterations, 0..3
_C.MODEL.PyMAF.AUX_SUPV_ON = True  # auxiliary DensePose IUV head
_C.MODEL.PyMAF.DP_HEATMAP_SIZE = 56  # IUV map side, px

_C.RES_MODEL = CN()
_C.RES_MODEL.DECONV_WITH_BIAS = False        # bias in the deconvolutions
_C.RES_MODEL.NUM_DECONV_LAYERS = 3           # deconvolution layers (one per feedback iteration)
_C.RES_MODEL.NUM_DECONV_FILTERS = [256, 256, 256]  # their output channels
_C.RES_MODEL.NUM_DECONV_KERNELS = [4, 4, 4]  # their kernel sizes

_C.POSE_RES_MODEL = CN()
_C.POSE_RES_MODEL.INIT_WEIGHTS = True        # training starts the backbone from ImageNet weights when the file
                                             # under data/pretrained_model/ exists (absent: a warning); False:
                                             # from scratch. Networks built for inference never load them.

# Keys of the original's configuration that nothing here reads (the backbone's ImageNet file is a fixed path
# in core.path_config; evaluation outputs, the device and workers are command-line flags). YAML files,
# --misc pairs and configs stored in checkpoints may still hold them: they are ignored, so the original's
# files and older checkpoints load.
RETIRED_KEYS = ('OUTPUT_DIR', 'DEVICE', 'DEBUG', 'NUM_WORKERS', 'SOLVER.MAX_ITER', 'SOLVER.STEPS',
                'MODEL.PyMAF.MAF_ON', 'POSE_RES_MODEL.NAME', 'POSE_RES_MODEL.PRETR_SET',
                'POSE_RES_MODEL.PRETRAINED_IM', 'POSE_RES_MODEL.PRETRAINED_COCO', 'POSE_RES_MODEL.EXTRA')
for _key in RETIRED_KEYS:
    _C.register_deprecated_key(_key)

DEFAULT_CFG_FILE = Path(__file__).resolve().parents[1] / 'configs' / 'pymaf_config.yaml'


def get_cfg_defaults() -> CN:
    """A fresh copy of the code defaults (before any YAML)."""
    return _C.clone()


class ConfigError(InputError, KeyError):
    """A config file or ``--misc`` override that cannot be applied (unknown key, bad value, not YAML)."""


def _merge_file(node: CN, cfg_file: str | os.PathLike) -> None:
    """Merge a YAML file into ``node``; every problem with the file is a `ConfigError` naming it."""
    import yaml

    path = Path(cfg_file)
    if not path.is_file():
        raise FileNotFoundError(f'config file {cfg_file} not found')
    try:
        with open(path, encoding='utf-8') as f:
            loaded = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f'{cfg_file} is not a readable YAML file ({type(err).__name__})',
                          'give --cfg_file a yacs config such as configs/pymaf_config.yaml') from None
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        raise ConfigError(f'{cfg_file} holds a {type(loaded).__name__}, not a mapping of config keys',
                          'give --cfg_file a yacs config such as configs/pymaf_config.yaml')
    try:
        node.merge_from_other_cfg(CN(loaded))  # CN() itself rejects values of unsupported types
    except KeyError as err:
        raise ConfigError(f'{cfg_file}: unknown config key {err}',
                          'check its spelling against core/cfgs.py') from None
    except (ValueError, AssertionError, TypeError, AttributeError) as err:
        raise ConfigError(f'{cfg_file}: {_problem(err)}',
                          'give each key a value of the type core/cfgs.py defines') from None


def _problem(err: Exception) -> str:
    """yacs's complaint in a few words (it can dump whole sub-configs): the key whose value does not fit."""
    text = ' '.join(str(err).split())
    if 'for config key:' in text:
        return f'the value of {text.rsplit("for config key:", 1)[1].strip()} has the wrong type'
    return text if len(text) <= 120 else text[:117] + '...'


def _int_as_float(node: CN, key: str, value):
    """``'100'`` for a float key becomes ``'100.0'`` (yacs would reject the int); anything else is unchanged."""
    current = node
    for part in key.split('.'):
        if not isinstance(current, CN) or part not in current:
            return value
        current = current[part]
    if isinstance(current, float) and isinstance(value, str) and value.lstrip('+-').isdigit():
        return str(float(value))
    return value


def merge_list(node: CN, pairs: list[str]) -> None:
    """Merge ``KEY VALUE`` pairs into ``node``; unknown keys and bad values are errors naming them."""
    if len(pairs) % 2:
        last = str(pairs[-1]) if len(str(pairs[-1])) <= 40 else str(pairs[-1])[:37] + '...'
        raise ConfigError(f'--misc takes KEY VALUE pairs, got an odd number of items ({len(pairs)}, the last '
                          f'{last!r})', 'give a value after every key')
    for key, value in zip(pairs[0::2], pairs[1::2]):
        if not _is_leaf_key(node, key):
            shown = key if len(key) <= 60 else key[:57] + '...'
            raise ConfigError(f'--misc: unknown config key {shown!r}', 'see core/cfgs.py for the keys')
        value = _int_as_float(node, key, value)
        try:
            node.merge_from_list([key, value])
        except (KeyError, AssertionError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
            shown = value if len(str(value)) <= 40 else str(value)[:37] + '...'
            raise ConfigError(f'--misc {key} {shown}: {_problem(err)}', 'give a value of the key\'s type') from None


def _is_leaf_key(node: CN, key: str) -> bool:
    """Whether the dotted ``key`` names a value (not a sub-node) of ``node``."""
    current = node
    for part in key.split('.'):
        if not isinstance(current, CN) or part not in current:
            return False
        current = current[part]
    return not isinstance(current, CN)


def merge_stored(node: CN, text: str) -> None:
    """Merge a config stored as YAML text (a checkpoint's ``'cfg'``) into ``node``; `RETIRED_KEYS` that older
    versions of this code wrote are dropped silently. Raises KeyError for a key this code does not know."""
    stored = CN.load_cfg(text)
    for key in RETIRED_KEYS:
        *parents, leaf = key.split('.')
        parent = stored
        for part in parents:
            parent = parent.get(part) if isinstance(parent, CN) else None
        if isinstance(parent, CN) and leaf in parent:
            del parent[leaf]
    node.merge_from_other_cfg(stored)


def update_cfg(cfg_file: str | os.PathLike | None = None, misc: list[str] | None = None) -> CN:
    """Defaults, then a YAML file, then ``KEY VALUE`` overrides; returns a new node."""
    node = get_cfg_defaults()
    if cfg_file:
        _merge_file(node, cfg_file)
    if misc:
        merge_list(node, list(misc))
    return node


def load_cfg(cfg_file: str | os.PathLike | None = None, misc: list[str] | None = None) -> CN:
    """The configuration a script runs with: the defaults, then ``cfg_file`` (default: the repository's
    configs/pymaf_config.yaml, the released settings), then the ``misc`` KEY VALUE overrides; a new node."""
    return update_cfg(cfg_file or DEFAULT_CFG_FILE, misc)
