"""Train PyMAF (see docs/training.md).

    # stage 1: Human3.6M only
    python3 train.py --regressor pymaf_net --single_dataset --single_dataname h36m --misc TRAIN.BATCH_SIZE 64
    # stage 2: the mixed datasets, from the stage-1 checkpoint
    python3 train.py --regressor pymaf_net --pretrained_checkpoint logs/.../checkpoints/model_best.pt \\
        --misc TRAIN.BATCH_SIZE 64
    # continue an interrupted run
    python3 train.py --resume --log_dir logs/pymaf_res50_mix/<experiment>
    # several GPUs / machines
    torchrun --nproc_per_node 4 train.py --single_dataset --single_dataname h36m
    # on the synthetic data the project renders itself (tools/make_synthetic_dataset.py --split train)
    python3 train.py --single_dataset --single_dataname synthetic --eval_dataset synthetic --device cpu
"""
from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from utils import cli


def check_values(options, cfg) -> None:
    """Options and config values that would fail later or train silently wrong. Raises `utils.cli.InputError`."""
    cli.check_min('--num_epochs', options.num_epochs)
    cli.check_min('--max_steps', options.max_steps, 0)
    cli.check_min('--img_res', options.img_res, 32)
    cli.check_min('--rot_factor', options.rot_factor, 0)
    cli.check_min('--scale_factor', options.scale_factor, 0)
    cli.check_min('--noise_factor', options.noise_factor, 0)
    for key in ('TRAIN.BATCH_SIZE', 'TEST.BATCH_SIZE', 'TRAIN.LOG_FREQ', 'TRAIN_VIS_ITER_FERQ', 'VAL_VIS_BATCH_FREQ',
                'TRAIN.VIS_SAMPLES'):
        cli.check_min(f'--misc {key}', _cfg_value(cfg, key), 1)
    cli.check_min('--misc TRAIN.NUM_WORKERS', cfg.TRAIN.NUM_WORKERS, 0)
    cli.check_min('--misc TRAIN.GRAD_CLIP', cfg.TRAIN.GRAD_CLIP, 0)
    cli.check_positive('--misc SOLVER.BASE_LR', cfg.SOLVER.BASE_LR)
    for key, allowed in (('TRAIN.BAD_SAMPLE_POLICY', ('skip', 'stop')), ('TRAIN.AMP', ('none', 'bf16', 'fp16')),
                         ('TRAIN.MIXED_PARTITION', ('eft', 'conference'))):
        if _cfg_value(cfg, key) not in allowed:
            raise cli.InputError(f'{key} must be one of {", ".join(allowed)}, got {_cfg_value(cfg, key)!r}',
                                 f'set --misc {key} {allowed[0]}')
    if options.device:
        cli.check_device(options.device)
    for flag in ('pretrained_checkpoint', 'train_npz', 'eval_npz'):
        if getattr(options, flag):
            cli.check_input_file(getattr(options, flag), f'--{flag}')
    for flag in ('train_img_dir', 'eval_img_dir'):
        if getattr(options, flag):
            cli.check_input_dir(getattr(options, flag), f'--{flag}')
    cli.check_writable_dir(options.log_dir, '--log_dir')


def _cfg_value(cfg, key: str):
    for part in key.split('.'):
        cfg = cfg[part]
    return cfg


def main(argv: list[str] | None = None) -> dict:
    """Run training with train.py's command line; returns the last validation results (rank 0)."""
    import torch.distributed as dist

    from core import cfgs
    from core.train_options import parse_train_args
    from core.trainer import Trainer, log_dir_checkpoint
    from utils import train_utils

    options = parse_train_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if options.resume:
        log_dir_checkpoint(options.log_dir)
        saved_cfg = Path(options.log_dir) / 'cfg.yaml'
        if not saved_cfg.is_file():
            raise FileNotFoundError(f'--resume: {saved_cfg} not found; --log_dir must be the experiment folder')
        options.cfg_file = str(saved_cfg)
    cfg = cfgs.load_cfg(options.cfg_file, options.misc)
    check_values(options, cfg)
    info = train_utils.init_distributed(**options.distributed_setup())
    log_dir = None
    created = [] if options.resume else cli.missing_folders(_planned_log_dir(options, cfg))
    try:
        log_dir = train_utils.prepare_log_dir(cfg, options.log_dir, options.as_dict(), resume=options.resume,
                                              single_dataset=options.single_dataset,
                                              exp_name=options.exp_name) if info.is_main else None
        if log_dir is not None:
            cfg.defrost()
            cfg.LOGDIR = str(log_dir)
        trainer = Trainer(options, cfg, info, log_dir)
        results = trainer.fit()
        if info.is_main:
            print(f'training stopped at epoch {trainer.epoch}, step {trainer.step}; skipped {trainer.skipped}; '
                  f'checkpoints in {log_dir / "checkpoints"}')
        return results
    except BaseException:
        if log_dir is not None and created:
            _remove_failed_run(log_dir, created)
        raise
    finally:
        if info.distributed:
            dist.destroy_process_group()


def _planned_log_dir(options, cfg) -> Path:
    from utils.train_utils import experiment_name

    sub_dir, log_name = experiment_name(cfg, options.single_dataset)
    return Path(options.log_dir) / sub_dir / (options.exp_name or log_name)


def _remove_failed_run(log_dir: Path, created: list[Path]) -> None:
    """A new run that failed before saving any checkpoint leaves no experiment folder behind."""
    if not any((log_dir / 'checkpoints').glob('*.pt')):
        shutil.rmtree(log_dir, ignore_errors=True)
        cli.remove_if_empty(created)
        logging.getLogger('train').info('removed %s: the run failed before its first checkpoint', log_dir)


def console(argv: list[str] | None = None) -> int:
    """Console entry with the convention of utils/cli.py (one error line, status 1; Ctrl-C saves first)."""
    return cli.run_main(lambda: main(argv), prog='train.py')


if __name__ == '__main__':
    sys.exit(console())
