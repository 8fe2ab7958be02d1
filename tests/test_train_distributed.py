"""train.py with two processes (gloo, CPU) under torchrun: validation, stop on a signal, exact resume.

The light network (configs/demo_weights_lite.yaml) on 8 synthetic images, 2 steps per epoch. Every run
is bounded by a timeout that kills its whole process group: a deadlock fails the test instead of hanging.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datasets import synthetic
from utils.saver import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # each run takes well under a minute on an idle 2-core CPU
RUN_ARGS = ('--num_epochs', '2', '--cfg_file', str(REPO / 'configs' / 'demo_weights_lite.yaml'))


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth_dist')
    npz = synthetic.generate_dataset(str(out), num_samples=8, seed=11, img_width=160, img_height=160)
    return out, npz


def _train_args(synth, log_dir, *extra) -> list[str]:
    out, npz = synth
    return ['--single_dataset', '--single_dataname', 'synthetic', '--train_npz', npz, '--train_img_dir', str(out),
            '--eval_dataset', 'synthetic', '--eval_npz', npz, '--eval_img_dir', str(out), '--log_dir', str(log_dir),
            '--exp_name', 'run', '--device', 'cpu', *extra, '--misc', 'TRAIN.BATCH_SIZE', '4', 'TRAIN.NUM_WORKERS',
            '0', 'SEED_VALUE', '7', 'TRAIN.AMP', 'none', 'TRAIN.SAVE_EVERY', '0', 'TEST.BATCH_SIZE', '2']


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _launch(torchrun_args: list[str], script: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), **(env or {}))
    cmd = [sys.executable, '-m', 'torch.distributed.run', *torchrun_args, str(REPO / script), *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    """Wait for every launcher; on timeout kill all their process groups (workers included) and fail."""
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
        tails = [proc.communicate()[0][-3000:] for proc in procs]
        pytest.fail(f'torchrun did not finish within {TIMEOUT_S} s (a deadlock?):\n' + '\n---\n'.join(tails))
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]
    return outputs


def _standalone(script: str, args: list[str], env: dict | None = None) -> str:
    return _finish([_launch(['--standalone', '--nproc_per_node', '2'], script, args, env)])[0]


def _run_dir(log_dir: Path) -> Path:
    return log_dir / 'pymaf_res18' / 'run'


@pytest.fixture(scope='module')
def two_nodes(synth, tmp_path_factory):
    """Two epochs with validation, launched as two one-process 'nodes' meeting at a c10d rendezvous."""
    log_dir = tmp_path_factory.mktemp('two_nodes')
    rdzv = ['--nnodes', '2', '--nproc_per_node', '1', '--rdzv_backend', 'c10d', '--rdzv_endpoint',
            f'127.0.0.1:{_free_port()}', '--rdzv_id', 'test_two_nodes']
    outputs = _finish([_launch(rdzv, 'train.py', _train_args(synth, log_dir, *RUN_ARGS)) for _ in range(2)])
    return _run_dir(log_dir), '\n'.join(outputs)


def test_two_nodes_validate_and_keep_the_best(synth, two_nodes, tmp_path):
    import eval as eval_script

    run, output = two_nodes
    assert 'process 1 of 2' in output and 'backend gloo' in output
    checkpoints = run / 'checkpoints'
    assert {p.name for p in checkpoints.iterdir()} == {'model_latest.pt', 'model_best.pt'}
    latest = read_checkpoint(checkpoints / 'model_latest.pt')
    assert (latest['epoch'], latest['batch_idx'], latest['total_step_count'], latest['world_size']) == (2, 0, 4, 2)
    assert not any(k.startswith('module.') for k in latest['model'])
    assert len(latest['rng']) == 2  # every process's RNG states, for an exact resume

    # The validation results reduced over the two shards are those of the whole set in one process.
    best = read_checkpoint(checkpoints / 'model_best.pt')
    assert best['optimizer'] is None and best['best_pa_mpjpe'] == latest['best_pa_mpjpe']
    out, npz = synth
    json_file = tmp_path / 'eval.json'
    report = eval_script.main(eval_script.parse_args([
        '--checkpoint', str(checkpoints / 'model_best.pt'), '--dataset', 'synthetic', '--dataset_file', npz,
        '--image_dir', str(out), '--device', 'cpu', '--num_workers', '0', '--log_freq', '0',
        '--json_file', str(json_file)]))
    assert report['results']['num_samples'] == 8
    assert report['results']['pa_mpjpe_mm'] == pytest.approx(best['best_pa_mpjpe'], abs=1e-3)
    assert json.loads(json_file.read_text())['checkpoint']['path'] == str(checkpoints / 'model_best.pt')


@pytest.fixture(scope='module')
def signalled(synth, tmp_path_factory):
    """The same run, standalone, where rank 1 receives SIGTERM after its third step."""
    log_dir = tmp_path_factory.mktemp('signalled')
    output = _standalone('tests/sigterm_rank.py', _train_args(synth, log_dir, *RUN_ARGS),
                         env={'SIGTERM_RANK': '1', 'SIGTERM_AFTER_STEP': '3'})
    return _run_dir(log_dir), output


def test_sigterm_to_one_process_stops_all_with_a_checkpoint(signalled):
    run, output = signalled
    assert output.count('SIGTERM received') == 1
    stopped = read_checkpoint(run / 'checkpoints' / 'model_latest.pt')
    assert (stopped['epoch'], stopped['batch_idx'], stopped['total_step_count']) == (1, 1, 3)
    assert not list((run / 'checkpoints').glob('.*.tmp'))


def test_resume_under_torchrun_continues_bit_exactly(two_nodes, signalled):
    run, _ = signalled
    _standalone('train.py', ['--resume', '--log_dir', str(run), '--device', 'cpu'])
    resumed = read_checkpoint(run / 'checkpoints' / 'model_latest.pt')
    full = read_checkpoint(two_nodes[0] / 'checkpoints' / 'model_latest.pt')
    assert (resumed['epoch'], resumed['batch_idx'], resumed['total_step_count']) == (2, 0, 4)
    assert resumed['model'].keys() == full['model'].keys()
    for key, value in full['model'].items():
        assert torch.equal(value, resumed['model'][key]), key
    adam_full, adam_resumed = full['optimizer']['state'], resumed['optimizer']['state']
    assert adam_full.keys() == adam_resumed.keys()
    assert all(torch.equal(adam_full[k]['exp_avg_sq'], adam_resumed[k]['exp_avg_sq']) for k in adam_full)
    assert resumed['best_pa_mpjpe'] == full['best_pa_mpjpe']
