"""Training environment: processes (torch.distributed), seeds, the experiment folder, RNG snapshots."""
from __future__ import annotations

import json
import logging
import os
import random
import secrets
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    world_size: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None, world_size: int = 1, rank: int = 0, local_rank: int = 0,
                     distributed: bool = False, dist_backend: str | None = None, dist_url: str = 'env://'
                     ) -> DistInfo:
    """Start torch.distributed when launched by torchrun (WORLD_SIZE > 1) or with ``distributed``.

    Args:
        device: torch device name; None: ``cuda:<local rank>`` when GPUs are present, else cpu.
        world_size, rank, local_rank: the process's place, unless torchrun's WORLD_SIZE, RANK and
            LOCAL_RANK environment variables say otherwise.
        distributed: start the process group even with one process.
        dist_backend: None: NCCL on GPUs, gloo on CPU.
        dist_url: the init method (torchrun: ``env://``).

    A single process needs nothing.
    """
    world_size = int(os.environ.get('WORLD_SIZE', world_size))
    rank = int(os.environ.get('RANK', rank))
    local_rank = int(os.environ.get('LOCAL_RANK', local_rank))
    requested = device
    if requested:
        device = torch.device(requested)
    elif torch.cuda.is_available():
        device = torch.device('cuda', local_rank if world_size > 1 else 0)
    else:
        device = torch.device('cpu')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'--device {requested} asked for a GPU, but torch sees none (torch.cuda.is_available() '
                           'is False); use --device cpu')
    if world_size > 1 or distributed:
        backend = dist_backend or ('nccl' if device.type == 'cuda' else 'gloo')
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size, rank=rank)
        logger.info('process %d of %d (local rank %d) on %s, backend %s', rank, world_size, local_rank, device,
                    backend)
    return DistInfo(world_size=world_size, rank=rank, local_rank=local_rank, device=device)


def shared_seed(seed: int, info: DistInfo) -> int:
    """The run seed: ``seed`` if >= 0, else a random one; the same on every process."""
    if seed < 0:
        seed = secrets.randbelow(2 ** 31)
    if info.distributed:
        value = torch.tensor([seed], dtype=torch.int64)
        dist.broadcast(value, src=0)
        seed = int(value.item())
    return seed


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices), and PYTHONHASHSEED for child processes."""
    os.environ['PYTHONHASHSEED'] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Snapshot of the python, numpy, torch and CUDA generators (for an exact resume)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a snapshot taken by `rng_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def experiment_name(cfg, single_dataset: bool) -> tuple[str, str]:
    """The original's ``(sub_dir, log_name)``: e.g. ``pymaf_res50_mix`` and
    ``pymaf_res50_mix_as_lp3_mlp256-128-64-5_Oct05-20-56-20-abc``."""
    model_cfg = cfg.MODEL.PyMAF
    sub_dir = f'pymaf_{model_cfg.BACKBONE}' + ('' if single_dataset else '_mix')
    name = sub_dir + ('_as_' if model_cfg.AUX_SUPV_ON else '_') + f'lp{model_cfg.N_ITER}'
    if model_cfg.N_ITER > 0:
        name += '_mlp' + '-'.join(str(d) for d in model_cfg.MLP_DIM)
    letters = ''.join(secrets.choice(string.ascii_lowercase) for _ in range(3))
    return sub_dir, f'{name}_{time.strftime("%b%d-%H-%M-%S-")}{letters}'


def prepare_log_dir(cfg, log_root: str | os.PathLike, options: dict, resume: bool = False,
                    single_dataset: bool = False, exp_name: str | None = None) -> Path:
    """Create ``<log_root>/<sub_dir>/<log_name>/`` with ``tb_summary/``, ``checkpoints/``, ``args.json`` (the
    run's ``options`` and the command line) and ``cfg.yaml``; with ``resume``, ``log_root`` is the existing
    experiment folder and ``args_resume.json`` and ``cfg_resume.yaml`` are added."""
    if resume:
        log_dir = Path(log_root)
        suffix = '_resume'
    else:
        sub_dir, log_name = experiment_name(cfg, single_dataset)
        log_dir = Path(log_root) / sub_dir / (exp_name or log_name)
        if (log_dir / 'checkpoints' / 'model_latest.pt').exists():
            raise FileExistsError(f'{log_dir} already holds a run; continue it with --resume --log_dir {log_dir} '
                                  'or choose another --exp_name')
        suffix = ''
    (log_dir / 'tb_summary').mkdir(parents=True, exist_ok=True)
    (log_dir / 'checkpoints').mkdir(parents=True, exist_ok=True)
    with open(log_dir / f'args{suffix}.json', 'w') as f:
        json.dump(dict(options, command=' '.join(sys.argv)), f, indent=2)
    with open(log_dir / f'cfg{suffix}.yaml', 'w') as f:
        f.write(cfg.dump())
    return log_dir

