"""Build the network a checkpoint was trained as, and load the checkpoint into it.

Three kinds of checkpoint are read:
- the released PyMAF checkpoint: default config, and it carries the neutral SMPL arrays, the mesh
  downsampling matrix and the mean parameters (no body-model files are needed);
- checkpoints written by train.py: the run's config is inside (``'cfg'``, YAML text) and so is the body
  model they were trained with;
- compact weight files (`save_compact_weights`, e.g. the built-in demo weights): half-precision weights
  without the body-model arrays, the config, and the body model they need (``'body_model'``: 'standin'
  or 'smpl'), which is then loaded from its files.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_BODY_BUFFER_NAMES = ('init_pose', 'init_shape', 'init_cam', 'Dmap')
# The SMPL arrays a PyMAF checkpoint carries (the released one and ours), under this prefix.
_CHECKPOINT_SMPL_PREFIX = 'regressor.0.smpl.'
_SMPL_BUFFERS = ('v_template', 'shapedirs', 'J_regressor', 'posedirs', 'lbs_weights', 'parents', 'faces_tensor')


def is_body_model_key(key: str) -> bool:
    """Whether a state_dict key holds body-model data (SMPL arrays, downsampling, mean parameters)."""
    return '.smpl.' in f'.{key}' or key.rsplit('.', 1)[-1] in _BODY_BUFFER_NAMES


def checkpoint_holds_body_model(checkpoint: dict) -> bool:
    """Whether a checkpoint dict carries the SMPL arrays (the released checkpoint and train.py's do)."""
    return _CHECKPOINT_SMPL_PREFIX + 'v_template' in checkpoint['model']


def checkpoint_body_model(checkpoint: dict | None):
    """The body-model files a network built from ``checkpoint`` loads (`core.path_config.BodyModelPaths`), or
    None when the checkpoint carries the body model itself (the released one and train.py's do).

    Compact weights name theirs (``'body_model': 'standin'`` selects the stand-in even when SMPL files exist);
    otherwise the official files when present, else the stand-in.
    """
    from core import path_config

    if checkpoint is not None and checkpoint_holds_body_model(checkpoint):
        return None
    return path_config.body_model_paths(standin=checkpoint is not None and checkpoint.get('body_model') == 'standin')


def checkpoint_cfg(checkpoint: dict | None, cfg_file: str | None = None, misc: list[str] | None = None):
    """The config a checkpoint's network is built with (a new node).

    Order: defaults, then ``cfg_file`` if given, else the checkpoint's own config if it has one, else the
    repository's configs/pymaf_config.yaml; then the ``misc`` KEY VALUE overrides.
    """
    from core import cfgs

    text = checkpoint.get('cfg') if checkpoint is not None else None
    if cfg_file or not text:
        return cfgs.update_cfg(cfg_file or cfgs.DEFAULT_CFG_FILE, misc)
    node = cfgs.get_cfg_defaults()
    try:
        cfgs.merge_stored(node, text)
    except KeyError as err:
        raise KeyError(f'the checkpoint\'s config has a key this code does not know: {err}') from None
    if misc:
        cfgs.merge_list(node, list(misc))
    return node


def build_from_checkpoint(checkpoint: dict | None, source: str | os.PathLike | None = None,
                          cfg_file: str | None = None, misc: list[str] | None = None) -> torch.nn.Module:
    """PyMAF as ``checkpoint`` describes it, with its weights loaded strictly (None: untrained, default body).

    Args:
        checkpoint: a dict from `utils.saver.read_checkpoint`, or None.
        source: the checkpoint's path, for messages.
        cfg_file, misc: config overrides (see `checkpoint_cfg`).

    Raises:
        utils.saver.CheckpointError: the weights do not fit the network (all differences named).
    """
    from models.pymaf_net import PyMAF

    node = checkpoint_cfg(checkpoint, cfg_file, misc)

    def build(body, mean_params=None):
        return PyMAF(body, mean_params, pretrained=False, model_cfg=node.MODEL.PyMAF, res_cfg=node.RES_MODEL)

    body = checkpoint_body_model(checkpoint)
    if checkpoint is None:
        return build(body)
    if body is None:
        return _load(build(None), checkpoint, source)
    model = build(body)
    if checkpoint.get('excludes_body_model'):
        own = model.state_dict()
        checkpoint = dict(checkpoint, model={**{k: v for k, v in own.items() if is_body_model_key(k)},
                                              **checkpoint['model']})
    return _load(model, checkpoint, source)


def _load(model: torch.nn.Module, checkpoint: dict, source) -> torch.nn.Module:
    from utils.saver import load_state

    load_state(model, checkpoint, source or 'checkpoint', strict=True)
    return model


def save_compact_weights(path: str | os.PathLike, model: torch.nn.Module, cfg, body_model: str, description: str,
                         extra: dict | None = None) -> Path:
    """Write a small weight file: float tensors in half precision, no body-model arrays, config inside.

    Args:
        path: output file (written atomically).
        model: the trained network.
        cfg: its config.
        body_model: 'standin' or 'smpl': the body model the weights were trained with (loaded from its files).
        description: one line saying what the weights are; shown by the demo.
        extra: more fields to record (training command, data, figures).
    """
    from utils.saver import atomic_torch_save

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
             if not is_body_model_key(k)}
    payload = {'model': state, 'cfg': cfg.dump(), 'excludes_body_model': True, 'body_model': body_model,
               'description': description, **(extra or {})}
    return atomic_torch_save(payload, path)


def load_body_model(gender: str = 'neutral', checkpoint: str | os.PathLike | None = None
                    ) -> tuple[torch.nn.Module, str]:
    """The SMPL layer the demo used, and its name (for the animation export).

    Args:
        gender: 'neutral', 'male' or 'female' (files under ``data/smpl`` or the stand-in).
        checkpoint: a PyMAF checkpoint that carries the body model (the released one does): its arrays are
            used, as the demo does with such a checkpoint even without ``data/smpl``.

    Raises:
        FileNotFoundError / ValueError: unreadable checkpoint, or one without the body model.
    """
    from core.path_config import body_model_paths
    from models.smpl import SMPL

    if checkpoint is not None:
        from utils.saver import read_checkpoint

        state = read_checkpoint(checkpoint)['model']
        missing = [name for name in _SMPL_BUFFERS if _CHECKPOINT_SMPL_PREFIX + name not in state]
        if missing:
            raise ValueError(f'checkpoint {checkpoint} holds no body model (missing {missing}); export without '
                             '--checkpoint to use the body model under data/')
        smpl = SMPL(None, gender='neutral', batch_size=1)
        for name in _SMPL_BUFFERS:
            setattr(smpl, name, state[_CHECKPOINT_SMPL_PREFIX + name].detach().cpu().clone())
        return smpl.eval(), 'checkpoint_neutral'
    paths = body_model_paths()
    smpl = SMPL(paths.smpl_dir, gender=gender, batch_size=1, joint_regressor_extra=paths.joint_regressor_extra)
    return smpl.eval(), ('standin' if paths.is_standin else 'smpl') + f'_{gender}'
