"""The one place that writes and reads checkpoints.

Format (a superset of the original's): ``{'model': state_dict, 'optimizer', 'epoch', 'batch_idx',
'batch_size', 'total_step_count', 'cfg': YAML text, **extra}``. Files are written atomically (a temporary
file in the same folder, then a rename), so an interrupted save never leaves a half-written checkpoint.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from utils.cli import InputError, atomic_write

logger = logging.getLogger(__name__)

# How to get a usable file, for the messages of `CheckpointError`.
CHECKPOINT_FIX = ('pass a checkpoint written by train.py or the released PyMAF_model_checkpoint.pt '
                  '(see data/README.md)')
# A mismatch listing longer than this is summarised (counts and a few names) to keep the error on one line.
MAX_MISMATCH_CHARS = 300


class CheckpointError(InputError):
    """The file is not a PyMAF checkpoint, or its weights do not match the model."""


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer=None, epoch: int = 0, step: int = 0,
                    cfg=None, extra: dict | None = None, batch_size: int | None = None, batch_idx: int = 0) -> Path:
    """Write a self-describing checkpoint atomically; returns its path.

    ``epoch`` and ``batch_idx`` say where training stands: ``batch_idx`` batches of epoch ``epoch`` are done.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, 'module') else model
    payload = {
        'model': module.state_dict(),
        'optimizer': optimizer.state_dict() if optimizer is not None else None,
        'epoch': epoch,
        'batch_idx': batch_idx,
        'batch_size': batch_size,
        'total_step_count': step,
        'cfg': cfg.dump() if cfg is not None else None,
    }
    payload.update(extra or {})
    return atomic_torch_save(payload, path)


def atomic_torch_save(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the target folder, then rename: never a half-written file."""
    return atomic_write(path, lambda f: torch.save(payload, f))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.<name>.<random>.tmp``) that a killed `atomic_torch_save` left in ``folder``.

    Call it when a run starts, before anything saves there; returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    for tmp in sorted(folder.glob('.*.tmp')) if folder.is_dir() else []:
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
            logger.info('removed %s, left by an interrupted save', tmp)
    return removed


def read_checkpoint(path: str | os.PathLike, map_location='cpu', mmap: bool = False) -> dict:
    """Load a checkpoint file on any device; a bare state_dict is wrapped as ``{'model': ...}``.

    ``mmap`` maps the tensors' bytes instead of reading them (cheap when only the other fields are needed;
    files of the zip format that torch.save writes since PyTorch 1.6).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} not found (the released PyMAF checkpoint goes to '
                                'data/pretrained_model/PyMAF_model_checkpoint.pt; see data/README.md)')
    try:
        data = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as err:  # noqa: BLE001 (any unpickling failure means "not a checkpoint")
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint ({type(err).__name__})',
                              CHECKPOINT_FIX) from None
    if isinstance(data, dict) and 'model' not in data and all(isinstance(v, torch.Tensor) for v in data.values()):
        data = {'model': data}
    if not isinstance(data, dict) or not isinstance(data.get('model'), dict):
        raise CheckpointError(f'{path} holds no model weights (expected a dict with a "model" state_dict)',
                              CHECKPOINT_FIX)
    return data


def describe_mismatch(model: torch.nn.Module, state: dict, show: int = 8) -> str:
    """One line naming what differs between a model's state_dict and ``state`` ('' when they match)."""
    own = model.state_dict()
    groups = (
        ('missing', [k for k in own if k not in state]),
        ('unexpected', [k for k in state if k not in own]),
        ('shape mismatch', [f'{k} checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
                            for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]),
    )
    parts = []
    for label, items in groups:
        if items:
            more = f' (+{len(items) - show} more)' if len(items) > show else ''
            parts.append(f'{len(items)} {label}: {", ".join(items[:show])}{more}')
    return '; '.join(parts)


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True, map_location='cpu',
                    optimizer=None) -> dict:
    """Load a checkpoint file into ``model`` (and ``optimizer``); returns the checkpoint dict. See `load_state`."""
    return load_state(model, read_checkpoint(path, map_location), path, strict, optimizer)


def load_state(model: torch.nn.Module, data: dict, source: str | os.PathLike, strict: bool = True,
               optimizer=None) -> dict:
    """Load an already-read checkpoint dict (`read_checkpoint`) into ``model``; returns ``data``.

    With ``strict`` any missing, unexpected or mis-shaped key raises `CheckpointError` naming them on one
    line; without it, matching keys are loaded and the differences are logged. ``source`` names the
    checkpoint in messages.
    """
    state = {k.removeprefix('module.'): v for k, v in data['model'].items()}
    problems = describe_mismatch(model, state)
    if problems and strict:
        if len(problems) > MAX_MISMATCH_CHARS:
            own = model.state_dict()
            matching = sum(1 for k in own if k in state and tuple(state[k].shape) == tuple(own[k].shape))
            problems = (f'{matching} of {len(own)} weights match ('
                        + describe_mismatch(model, state, show=1).replace('; ', ', ') + ')')
            problems = problems if len(problems) <= MAX_MISMATCH_CHARS else problems[:MAX_MISMATCH_CHARS] + '...)'
        raise CheckpointError(f'{source} is not a PyMAF checkpoint for this model: {problems}', CHECKPOINT_FIX)
    if problems:
        logger.warning('%s: loading the matching keys only; %s', source, problems)
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(state, strict=strict)
    if optimizer is not None and data.get('optimizer') is not None:
        optimizer.load_state_dict(data['optimizer'])
    return data


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()
