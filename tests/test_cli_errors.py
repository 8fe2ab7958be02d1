"""Every command-line script against a table of bad inputs and faults (utils/cli.py's convention).

For each case: the exit status; on a mistake exactly one short ``error:`` line on stderr and no traceback;
and the pre-existing output folder ``out/`` byte-for-byte unchanged (hashed before and after). Also: a
run that finds nobody leaves earlier results alone, Ctrl-C leaves outputs as they were, evaluation skips
and counts bad samples, and ``demo.py --recon_result_file`` renders through the command line.

The scripts run as ``__main__`` in processes forked from one warm interpreter (tests/cli_runner.py), so
the ~90 cases take well under two minutes; two cases also run in a fresh ``python`` to cover that path.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import cfgs
from datasets import synthetic
from utils.video.io import VideoWriter, write_png

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
LITE_CFG = 'configs/demo_weights_lite.yaml'
MAX_ERROR_CHARS = 400
HAS_CUDA = torch.cuda.is_available()


def _frames(num: int, width: int = 160, height: int = 120, people: bool = True) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(num):
        img = rng.integers(60, 90, (height, width, 3)).astype(np.uint8)
        if people:
            img[30:95, 20 + 6 * t:42 + 6 * t] = (200, 80, 60)
            img[14:30, 26 + 6 * t:36 + 6 * t] = (230, 190, 160)
        else:
            img[:] = 40
        frames.append(img)
    return frames


def _anno(num: int, width: int = 160, height: int = 120) -> list[dict]:
    frames = [{'frame_id': t, 'rect': {'tl': {'x': (16 + 6 * t) / width, 'y': 10 / height},
                                       'br': {'x': (46 + 6 * t) / width, 'y': 100 / height}}} for t in range(num)]
    return [{'idx': 1, 'frames': frames}]


def _video(path: Path, frames: list[np.ndarray]) -> None:
    with VideoWriter(path, fps=10) as writer:
        for frame in frames:
            writer.write(frame)


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _sequence(path: Path, **override) -> None:
    frames = 3
    seq = {'sequence': 'seq', 'poses': [np.zeros((frames, 72))], 'betas': [np.zeros(10)],
           'poses2d': [np.ones((frames, 3, 18))], 'cam_poses': np.tile(np.eye(4), (frames, 1, 1)),
           'campose_valid': [np.ones(frames)], 'genders': ['m']}
    seq.update(override)
    for key in [k for k, v in override.items() if v is None]:
        del seq[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(seq, protocol=2))


def _build_inputs(root: Path) -> dict:
    """Tiny good and broken inputs under root/in, pre-existing outputs under root/out."""
    inp, out = root / 'in', root / 'out'
    inp.mkdir()
    p = {'in': str(inp), 'out': str(out), 'ok': str(root / 'ok')}
    # a 4-sample synthetic dataset and broken variants of its annotation file
    synth = inp / 'synth'
    npz = synthetic.generate_dataset(str(synth), num_samples=4, seed=3, img_width=96, img_height=96)
    good = dict(np.load(npz, allow_pickle=True))
    p.update(synth=str(synth), npz=npz)
    (inp / 'text.npz').write_text('imgname,center,scale\n')
    (inp / 'truncated.npz').write_bytes(Path(npz).read_bytes()[:600])
    np.save(inp / 'single.npy', np.zeros((4, 2)))
    os.replace(inp / 'single.npy', inp / 'single.npz')
    (inp / 'empty_file.npz').write_bytes(b'')
    _npz(inp / 'lacks_center.npz', **{k: v for k, v in good.items() if k != 'center'})
    _npz(inp / 'center_shape.npz', **dict(good, center=np.zeros((4, 3))))
    _npz(inp / 'scale_text.npz', **dict(good, scale=np.array(['a', 'b', 'c', 'd'])))
    _npz(inp / 'no_samples.npz', imgname=np.array([], dtype=str), center=np.zeros((0, 2)), scale=np.zeros(0))
    _npz(inp / 'imgname_2d.npz', **dict(good, imgname=good['imgname'].reshape(2, 2)))
    _npz(inp / 'pose_short.npz', **dict(good, pose=good['pose'][:, :69]))
    _npz(inp / 'nan_s_all.npz', **dict(good, S=good['S'] * np.nan))
    _npz(inp / 'nan_kp_all.npz', **dict(good, part=good['part'] * np.nan))
    _npz(inp / 'inf_scale.npz', **dict(good, scale=good['scale'] * np.inf))
    mixed = dict(good, S=good['S'].copy(), imgname=good['imgname'].astype(object))
    mixed['S'][1, 0, 0] = np.nan
    mixed['imgname'][2] = 'images/missing.jpg'
    _npz(inp / 'two_bad_rows.npz', **mixed)
    # demo inputs
    _video(inp / 'walk.mp4', _frames(4))
    _video(inp / 'long.mp4', _frames(40))
    _video(inp / 'still.mp4', _frames(3, people=False))
    (inp / 'anno.json').write_text(json.dumps(_anno(4)))
    (inp / 'anno_bad.json').write_text('{"not": "a list"')
    for i, frame in enumerate(_frames(3)):
        write_png(inp / 'mixed' / f'{i}.png', frame if i < 2 else frame[:80, :100])
    write_png(inp / 'photo.png', _frames(1)[0])
    (inp / 'empty_dir').mkdir()
    (inp / 'garbage.png').write_bytes(os.urandom(300))
    (inp / 'a_file').write_text('a file, not a folder')
    # checkpoints and configs
    (inp / 'corrupt.pt').write_bytes(os.urandom(2000))
    (inp / 'text.pt').write_text('hello')
    torch.save({f'layer{i}.{j}.conv.weight': torch.zeros(2, 2) for i in range(20) for j in range(3)},
               inp / 'foreign.pt')
    torch.save([1, 2, 3], inp / 'list.pt')
    (inp / 'broken.yaml').write_text('MODEL: [unclosed\n  : :\n')
    (inp / 'list.yaml').write_text('- 1\n- 2\n')
    (inp / 'unknown.yaml').write_text('LOSS:\n  NOT_A_KEY: 1.0\n')
    (inp / 'badtype.yaml').write_text('TRAIN:\n  BATCH_SIZE: many\n')
    (inp / 'coco_bad.json').write_text('{"images": 3')
    (inp / 'result_list.pkl').write_bytes(pickle.dumps([1, 2]))
    (inp / 'eval.json').write_text('{"not closed"')
    # a run to resume whose latest checkpoint holds weights only, with a stale temporary file
    run = inp / 'weights_only_run'
    (run / 'checkpoints').mkdir(parents=True)
    (run / 'args.json').write_text(json.dumps({'single_dataset': True}))
    (run / 'cfg.yaml').write_text(cfgs.update_cfg(REPO / LITE_CFG).dump())
    torch.save({'model': {'w': torch.zeros(1)}}, run / 'checkpoints' / 'model_latest.pt')
    (run / 'checkpoints' / '.model_latest.pt.k3j2.tmp').write_bytes(b'half a checkpoint')
    p['stale_tmp'] = str(run / 'checkpoints' / '.model_latest.pt.k3j2.tmp')
    # 3DPW roots
    _sequence(inp / 'p3_malformed' / 'sequenceFiles' / 'test' / 'a.pkl', poses2d=None, cam_poses=None)
    _sequence(inp / 'p3_shape' / 'sequenceFiles' / 'test' / 'a.pkl', poses=[np.zeros((3, 70))])
    _sequence(inp / 'p3_nan' / 'sequenceFiles' / 'test' / 'a.pkl', betas=[np.full(10, np.nan)])
    _sequence(inp / 'p3_invisible' / 'sequenceFiles' / 'test' / 'a.pkl', poses2d=[np.zeros((3, 3, 18))])
    (inp / 'p3_text' / 'sequenceFiles' / 'test').mkdir(parents=True)
    (inp / 'p3_text' / 'sequenceFiles' / 'test' / 'a.pkl').write_text('not a pickle')
    (inp / 'p3_list' / 'sequenceFiles' / 'test').mkdir(parents=True)
    (inp / 'p3_list' / 'sequenceFiles' / 'test' / 'a.pkl').write_bytes(pickle.dumps([1]))
    (inp / 'p3_empty' / 'sequenceFiles' / 'test').mkdir(parents=True)
    # earlier results that no failing run may touch
    for rel, data in (('walk/output.pkl', b'earlier walk results'), ('still/output.pkl', b'earlier still results'),
                      ('still/output.npz', b'earlier npz'), ('eval.json', b'{"earlier": 1}'),
                      ('logs/keep.txt', b'earlier log'), ('synth_new/keep.txt', b'earlier set'),
                      ('3dpw.npz', b'earlier 3dpw'), ('long/output.pkl', b'earlier long')):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return p


# (name, argv, expected substring of the error line); every case must exit 1 with out/ unchanged. The
# evaluation cases run PyTorch, so that no ONNX export is cached beside the shipped weights.
DEMO = ['demo.py', '--output_folder', '{out}']
WALK = DEMO + ['--vid_file', '{in}/walk.mp4']
EVAL = ['eval.py', '--dataset', 'synthetic', '--image_dir', '{synth}', '--device', 'cpu', '--num_workers', '0',
        '--backend', 'torch', '--json_file', '{out}/eval.json',
        '--checkpoint', 'assets/demo_weights/pymaf_lite_standin.pt']
COCO = ['eval_coco.py', '--dataset_file', '{npz}', '--image_dir', '{synth}', '--device', 'cpu', '--num_workers', '0',
        '--backend', 'torch', '--output_dir', '{out}', '--checkpoint', 'assets/demo_weights/pymaf_lite_standin.pt']
TRAIN = ['train.py', '--single_dataset', '--single_dataname', 'synthetic', '--eval_dataset', 'none', '--device',
         'cpu', '--log_dir', '{out}/logs', '--cfg_file', LITE_CFG, '--num_epochs', '1']
TRAIN_DATA = ['--train_npz', '{npz}', '--train_img_dir', '{synth}']
MISC = ['--misc', 'TRAIN.NUM_WORKERS', '0', 'TRAIN.BATCH_SIZE', '2']
P3 = ['tools/prepare_3dpw.py', '--out_file', '{out}/3dpw.npz', '--dataset_root']
SYN = ['tools/make_synthetic_dataset.py', '--out_dir', '{out}/synth_new']
EXPORT = ['-m', 'tools.export']
ONNX = ['-m', 'tools.export_onnx', '--out', '{out}/m.onnx', '--no_check']

MISTAKES = [
    # demo.py: inputs
    ('demo no input', DEMO, 'exactly one input'),
    ('demo two inputs', WALK + ['--img_file', '{in}/photo.png'], 'exactly one input'),
    ('demo missing video', DEMO + ['--vid_file', '{in}/nope.mp4'], 'not found'),
    ('demo video not a video', DEMO + ['--vid_file', '{in}/anno.json'], 'cannot read video'),
    ('demo empty folder', DEMO + ['--image_folder', '{in}/empty_dir'], 'no images'),
    ('demo image unreadable', DEMO + ['--img_file', '{in}/garbage.png'], 'cannot decode'),
    ('demo folder mixed sizes', DEMO + ['--image_folder', '{in}/mixed'], '--image_based'),
    ('demo anno not json', WALK + ['--use_gt', '--anno_file', '{in}/anno_bad.json'], 'anno'),
    ('demo anno missing', WALK + ['--use_gt', '--anno_file', '{in}/nope.json'], 'not found'),
    ('demo use_gt without anno', WALK + ['--use_gt'], '--anno_file'),
    # demo.py: flags and values
    ('demo pose tracking', WALK + ['--tracking_method', 'pose'], 'STAF'),
    ('demo unknown detector', WALK + ['--detector', 'maskrcnn'], 'maskrcnn'),
    ('demo regressor', WALK + ['--regressor', 'hmr'], 'pymaf_net'),
    ('demo single_crop on video', WALK + ['--single_crop'], '--single_crop'),
    ('demo webcam with use_gt', DEMO + ['--webcam', '0', '--use_gt'], '--use_gt'),
    ('demo batch 0', WALK + ['--model_batch_size', '0'], '--model_batch_size'),
    ('demo tracker batch -1', WALK + ['--tracker_batch_size', '-1'], '--tracker_batch_size'),
    ('demo batch not int', WALK + ['--model_batch_size', 'eight'], 'invalid int'),
    ('demo render ratio', WALK + ['--render_ratio', '-1'], '--render_ratio'),
    ('demo max frames 0', WALK + ['--max_frames', '0'], '--max_frames'),
    ('demo bbox scale 0', WALK + ['--bbox_scale', '0'], '--bbox_scale'),
    ('demo det threshold', WALK + ['--det_threshold', '2'], '--det_threshold'),
    ('demo smooth cutoff nan', WALK + ['--smooth', '--smooth_min_cutoff', 'nan'], '--smooth_min_cutoff'),
    ('demo unknown flag', WALK + ['--fast'], 'unrecognized arguments'),
    ('demo device name', WALK + ['--device', 'tpu9'], '--device tpu9'),
    ('demo output under a file', ['demo.py', '--vid_file', '{in}/walk.mp4', '--output_folder', '{in}/a_file/o'],
     'is a file'),
    # demo.py: model, config, results
    ('demo checkpoint missing', WALK + ['--checkpoint', '{in}/nope.pt'], 'not found'),
    ('demo checkpoint corrupt', WALK + ['--checkpoint', '{in}/corrupt.pt'], 'not a readable PyTorch checkpoint'),
    ('demo checkpoint text', WALK + ['--checkpoint', '{in}/text.pt'], 'not a readable PyTorch checkpoint'),
    ('demo checkpoint foreign', WALK + ['--checkpoint', '{in}/foreign.pt'], 'not a PyMAF checkpoint'),
    ('demo checkpoint a list', WALK + ['--checkpoint', '{in}/list.pt'], 'holds no model weights'),
    ('demo misc unknown', WALK + ['--misc', 'MODEL.NOPE', '1'], 'unknown config key'),
    ('demo misc odd', WALK + ['--misc', 'MODEL.PyMAF.N_ITER'], 'KEY VALUE'),
    ('demo misc type', WALK + ['--misc', 'MODEL.PyMAF.N_ITER', 'three'], 'MODEL.PyMAF.N_ITER'),
    ('demo misc node', WALK + ['--misc', 'MODEL', '1'], 'unknown config key'),
    ('demo cfg broken', WALK + ['--cfg_file', '{in}/broken.yaml'], 'not a readable YAML'),
    ('demo cfg a list', WALK + ['--cfg_file', '{in}/list.yaml'], 'not a mapping'),
    ('demo cfg unknown key', WALK + ['--cfg_file', '{in}/unknown.yaml'], 'unknown config key'),
    ('demo cfg missing', WALK + ['--cfg_file', '{in}/nope.yaml'], 'not found'),
    ('demo failed run leaves no folder', ['demo.py', '--output_folder', '{out}/fresh/sub', '--vid_file',
                                          '{in}/walk.mp4', '--checkpoint', '{in}/corrupt.pt'], 'not a readable'),
    ('demo mixed sizes leaves no folder', ['demo.py', '--output_folder', '{out}/fresh2', '--image_folder',
                                           '{in}/mixed'], '--image_based'),
    ('demo recon missing', WALK + ['--recon_result_file', '{in}/nope.pkl'], 'not found'),
    ('demo recon not a pickle', WALK + ['--recon_result_file', '{in}/anno.json'], 'not a plain pickle'),
    ('demo recon foreign pickle', WALK + ['--recon_result_file', '{in}/result_list.pkl'], 'not a demo result'),
    # eval.py
    ('eval dataset missing', EVAL + ['--dataset_file', '{in}/nope.npz'], 'not found'),
    ('eval npz is text', EVAL + ['--dataset_file', '{in}/text.npz'], 'not a readable npz'),
    ('eval npz truncated', EVAL + ['--dataset_file', '{in}/truncated.npz'], 'not a readable npz'),
    ('eval npz empty file', EVAL + ['--dataset_file', '{in}/empty_file.npz'], 'not a readable npz'),
    ('eval npy not npz', EVAL + ['--dataset_file', '{in}/single.npz'], 'single array'),
    ('eval lacks center', EVAL + ['--dataset_file', '{in}/lacks_center.npz'], 'lacks the field(s) center'),
    ('eval center shape', EVAL + ['--dataset_file', '{in}/center_shape.npz'], 'center has shape (4, 3)'),
    ('eval scale text', EVAL + ['--dataset_file', '{in}/scale_text.npz'], 'expected numbers'),
    ('eval no samples', EVAL + ['--dataset_file', '{in}/no_samples.npz'], 'no samples'),
    ('eval imgname 2d', EVAL + ['--dataset_file', '{in}/imgname_2d.npz'], 'imgname'),
    ('eval pose short', EVAL + ['--dataset_file', '{in}/pose_short.npz'], 'pose has shape (4, 69)'),
    ('eval all rows nan', EVAL + ['--dataset_file', '{in}/nan_s_all.npz'], 'no sample could be evaluated'),
    ('eval inf scale', EVAL + ['--dataset_file', '{in}/inf_scale.npz'], 'no sample could be evaluated'),
    ('eval images missing', EVAL + ['--dataset_file', '{npz}', '--image_dir', '{in}/empty_dir'],
     'no sample could be evaluated'),
    ('eval failed run leaves no folder', EVAL[:-4] + ['--json_file', '{out}/fresh/r.json'] + EVAL[-2:] +
     ['--dataset_file', '{npz}', '--image_dir', '{in}/empty_dir'], 'no sample could be evaluated'),
    ('eval stop policy', EVAL + ['--dataset_file', '{in}/two_bad_rows.npz', '--bad_sample_policy', 'stop'],
     'sample 1'),
    ('eval batch 0', EVAL + ['--dataset_file', '{npz}', '--batch_size', '0'], '--batch_size'),
    ('eval workers -1', EVAL + ['--dataset_file', '{npz}', '--num_workers', '-1'], '--num_workers'),
    ('eval log_freq -1', EVAL + ['--dataset_file', '{npz}', '--log_freq', '-1'], '--log_freq'),
    ('eval unknown dataset', EVAL + ['--dataset', 'mars'], 'invalid choice'),
    ('eval misc unknown', EVAL + ['--dataset_file', '{npz}', '--misc', 'NOPE', '1'], 'unknown config key'),
    ('eval cfg wrong type', EVAL + ['--dataset_file', '{npz}', '--cfg_file', '{in}/badtype.yaml'], 'wrong type'),
    ('eval checkpoint corrupt', EVAL + ['--dataset_file', '{npz}', '--checkpoint', '{in}/corrupt.pt'],
     'not a readable PyTorch checkpoint'),
    ('eval checkpoint foreign', EVAL + ['--dataset_file', '{npz}', '--checkpoint', '{in}/foreign.pt'],
     'not a PyMAF checkpoint'),
    ('eval json under a file', EVAL + ['--dataset_file', '{npz}', '--json_file', '{in}/a_file/r.json'], 'is a file'),
    ('eval json is a folder', EVAL + ['--dataset_file', '{npz}', '--json_file', '{in}/empty_dir'], 'is a folder'),
    ('eval image dir missing', EVAL + ['--dataset_file', '{npz}', '--image_dir', '{in}/nope'], 'not found'),
    ('eval device name', EVAL + ['--dataset_file', '{npz}', '--device', 'gpu!'], 'not a device name'),
    # eval_coco.py
    ('coco annotation missing', COCO + ['--annotation_file', '{in}/nope.json'], 'not found'),
    ('coco annotation broken', COCO + ['--annotation_file', '{in}/coco_bad.json'], 'not a COCO keypoint'),
    ('coco batch 0', COCO + ['--annotation_file', '{in}/coco_bad.json', '--batch_size', '0'], '--batch_size'),
    ('coco npz foreign', COCO[:2] + ['{in}/text.npz'] + COCO[3:] + ['--annotation_file', '{in}/anno.json'],
     'not a readable npz'),
    ('coco output under a file', COCO[:-4] + ['--output_dir', '{in}/a_file/x'] + COCO[-2:], 'is a file'),
    # train.py
    ('train batch 0', TRAIN + TRAIN_DATA + ['--misc', 'TRAIN.BATCH_SIZE', '0'], 'TRAIN.BATCH_SIZE'),
    ('train test batch 0', TRAIN + TRAIN_DATA + ['--misc', 'TEST.BATCH_SIZE', '0'], 'TEST.BATCH_SIZE'),
    ('train log freq 0', TRAIN + TRAIN_DATA + ['--misc', 'TRAIN.LOG_FREQ', '0'], 'TRAIN.LOG_FREQ'),
    ('train lr negative', TRAIN + TRAIN_DATA + ['--misc', 'SOLVER.BASE_LR', '-1'], 'SOLVER.BASE_LR'),
    ('train bad policy', TRAIN + TRAIN_DATA + ['--misc', 'TRAIN.BAD_SAMPLE_POLICY', 'ignore'],
     'BAD_SAMPLE_POLICY'),
    ('train misc unknown', TRAIN + TRAIN_DATA + ['--misc', 'TRAIN.BATCHSIZE', '4'], 'unknown config key'),
    ('train epochs 0', TRAIN + TRAIN_DATA + ['--num_epochs', '0'], '--num_epochs'),
    ('train img res', TRAIN + TRAIN_DATA + ['--img_res', '0'], '--img_res'),
    ('train npz missing', TRAIN + ['--train_npz', '{in}/nope.npz'], 'not found'),
    ('train npz foreign', TRAIN + ['--train_npz', '{in}/text.npz', '--train_img_dir', '{synth}'] + MISC,
     'not a readable npz'),
    ('train img dir missing', TRAIN + ['--train_npz', '{npz}', '--train_img_dir', '{in}/nope'], 'not found'),
    ('train every image missing', TRAIN + ['--train_npz', '{npz}', '--train_img_dir', '{in}/empty_dir'] + MISC,
     'every training sample'),
    ('train nan keypoints', TRAIN + ['--train_npz', '{in}/nan_kp_all.npz', '--train_img_dir', '{synth}'] + MISC,
     'every training sample'),
    ('train pretrained corrupt', TRAIN + TRAIN_DATA + ['--pretrained_checkpoint', '{in}/corrupt.pt'] + MISC,
     'not a readable PyTorch checkpoint'),
    ('train resume missing', ['train.py', '--resume', '--log_dir', '{in}/nope'], 'args.json'),
    ('train resume weights only', ['train.py', '--resume', '--log_dir', '{in}/weights_only_run', '--device', 'cpu',
                                   '--eval_dataset', 'none'] + TRAIN_DATA + MISC, 'no training state'),
    ('train log dir under a file', TRAIN[:-6] + ['--log_dir', '{in}/a_file/logs'] + TRAIN_DATA, 'is a file'),
    # tools
    ('3dpw root missing', P3 + ['{in}/nope'], 'not found'),
    ('3dpw no pickles', P3 + ['{in}/p3_empty'], 'no 3DPW sequence pickles'),
    ('3dpw not a pickle', P3 + ['{in}/p3_text'], 'not a readable 3DPW sequence'),
    ('3dpw a list', P3 + ['{in}/p3_list'], 'not a 3DPW sequence dict'),
    ('3dpw fields missing', P3 + ['{in}/p3_malformed'], 'lacks the 3DPW field(s) poses2d, cam_poses'),
    ('3dpw wrong shape', P3 + ['{in}/p3_shape'], 'poses[0] has shape (3, 70)'),
    ('3dpw nan betas', P3 + ['{in}/p3_nan'], 'betas[0]'),
    ('3dpw nothing visible', P3 + ['{in}/p3_invisible'], 'nothing to write'),
    ('3dpw out under a file', ['tools/prepare_3dpw.py', '--out_file', '{in}/a_file/x.npz', '--dataset_root',
                               '{in}/p3_shape'], 'is a file'),
    ('3dpw bad split', P3 + ['{in}/p3_shape', '--split', 'dev'], 'invalid choice'),
    ('synthetic zero samples', SYN + ['--num_samples', '0'], '--num_samples'),
    ('synthetic negative samples', SYN + ['--num_samples', '-3'], '--num_samples'),
    ('synthetic width 0', SYN + ['--img_width', '0'], '--img_width'),
    ('synthetic threads 0', SYN + ['--threads', '0'], '--threads'),
    ('synthetic npz name', SYN + ['--npz_name', '../x.npz'], '--npz_name'),
    ('synthetic out under a file', ['tools/make_synthetic_dataset.py', '--out_dir', '{in}/a_file/s'], 'is a file'),
    ('export missing', EXPORT + ['{in}/nope.pkl'], 'not found'),
    ('export not results', EXPORT + ['{in}/result_list.pkl', '--out', '{out}/export'], 'not'),
    ('export fps 0', EXPORT + ['{in}/result_list.pkl', '--fps', '0'], '--fps'),
    ('onnx checkpoint corrupt', ONNX + ['--checkpoint', '{in}/corrupt.pt'], 'not a readable PyTorch checkpoint'),
    ('onnx misc unknown', ONNX + ['--misc', 'NOPE', '1'], 'unknown config key'),
    ('onnx opset', ONNX + ['--opset', '9'], '--opset'),
    ('demo weights missing', ['tools/export_demo_weights.py', '{in}/nope.pt', '--out', '{out}/w.pt'], 'not found'),
    ('demo weights corrupt', ['tools/export_demo_weights.py', '{in}/corrupt.pt', '--out', '{out}/w.pt'],
     'not a readable PyTorch checkpoint'),
    ('demo weights not from train', ['tools/export_demo_weights.py', '{in}/foreign.pt', '--out', '{out}/w.pt'],
     'which body model'),
    ('sample clip seconds', ['-m', 'tools.make_sample_clip', '--seconds', '0', '--out', '{out}/c.mp4'], '--seconds'),
    ('sample clip not mp4', ['-m', 'tools.make_sample_clip', '--out', '{out}/c.avi'], '.mp4'),
    ('standin samples', ['-m', 'tools.make_standin_body', '--samples', '0', '--out', '{out}/s'], '--samples'),
]
if not HAS_CUDA:
    MISTAKES += [
        ('demo cuda without gpu', WALK + ['--device', 'cuda'], 'CUDA is not available'),
        ('eval cuda without gpu', EVAL + ['--dataset_file', '{npz}', '--device', 'cuda'], 'CUDA is not available'),
        ('train cuda without gpu', TRAIN + TRAIN_DATA + ['--device', 'cuda:0'], 'CUDA is not available'),
    ]

# Runs that succeed or are interrupted: (name, argv, status, interrupt_when or None, out/ unchanged?)
OTHER_RUNS = [
    ('demo nobody found', DEMO + ['--vid_file', '{in}/still.mp4'], 0, None, True),
    ('demo interrupted', DEMO + ['--vid_file', '{in}/long.mp4', '--use_gt', '--anno_file', '{in}/anno.json'], 130,
     '{out}/.long.tmp-*', True),
    ('synthetic interrupted', SYN + ['--num_samples', '500'], 130, '{out}/.synth_new.tmp-*/images/*.jpg', True),
    ('demo results', ['demo.py', '--output_folder', '{ok}', '--vid_file', '{in}/walk.mp4', '--use_gt',
                      '--anno_file', '{in}/anno.json', '--no_render'], 0, None, True),
    ('demo recon video', ['demo.py', '--output_folder', '{ok}/recon', '--vid_file', '{in}/walk.mp4',
                          '--recon_result_file', '{ok}/walk/output.pkl', '--no_frames'], 0, None, True),
    ('demo image results', ['demo.py', '--output_folder', '{ok}', '--img_file', '{in}/photo.png', '--single_crop',
                            '--no_render'], 0, None, True),
    ('demo recon image', ['demo.py', '--output_folder', '{ok}/recon', '--img_file', '{in}/photo.png',
                          '--recon_result_file', '{ok}/photo/output.pkl'], 0, None, True),
    ('eval skips bad rows', EVAL[:-4] + ['--json_file', '{ok}/eval.json'] + EVAL[-2:] +
     ['--dataset_file', '{in}/two_bad_rows.npz'], 0, None, True),
]


def _fill(argv: list[str], paths: dict) -> list[str]:
    return [a.format(**paths) for a in argv]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Build the inputs, run every case through tests/cli_runner.py, return {name: result} and the paths."""
    root = tmp_path_factory.mktemp('cli')
    paths = _build_inputs(root)
    cases = [{'name': name, 'argv': _fill(argv, paths), 'watch': [paths['out']], 'timeout': 120}
             for name, argv, _ in MISTAKES]
    cases += [{'name': name, 'argv': _fill(argv, paths), 'watch': [paths['out']], 'timeout': 300,
               'interrupt_when': when.format(**paths) if when else None}
              for name, argv, _, when, _ in OTHER_RUNS]
    (root / 'cases.json').write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='2')
    proc = subprocess.run([PY, str(REPO / 'tests' / 'cli_runner.py'), str(root / 'cases.json'),
                           str(root / 'results.json')], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r['name']: r for r in json.loads((root / 'results.json').read_text())}
    return results, paths


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith('error:')]


@pytest.mark.parametrize('name, expected', [(name, expected) for name, _, expected in MISTAKES],
                         ids=[name for name, _, _ in MISTAKES])
def test_mistake_gives_one_error_line_and_writes_nothing(runs, name, expected):
    result = runs[0][name]
    stderr = result['stderr']
    assert result['status'] == 1, (result['status'], stderr[-2000:])
    assert 'Traceback' not in stderr, stderr[-3000:]
    errors = _error_lines(stderr)
    assert len(errors) == 1, stderr[-2000:]
    assert expected in errors[0], errors[0]
    assert len(errors[0]) <= MAX_ERROR_CHARS, errors[0]
    assert result['unchanged'], 'the output folder changed'


def test_cases_tried_and_handled(runs):
    """The count for the report: every case of the table was tried and handled."""
    results = runs[0]
    handled = [name for name, _, _ in MISTAKES if results[name]['status'] == 1 and results[name]['unchanged']
               and len(_error_lines(results[name]['stderr'])) == 1 and 'Traceback' not in results[name]['stderr']]
    handled += [name for name, _, status, _, unchanged in OTHER_RUNS
                if results[name]['status'] == status and results[name]['unchanged'] == unchanged]
    seconds = sorted((r['seconds'], name) for name, r in results.items())
    print(f'{len(handled)} of {len(MISTAKES) + len(OTHER_RUNS)} cases handled in {sum(s for s, _ in seconds):.1f} s; '
          'slowest: ' + ', '.join(f'{name} {sec:.1f} s' for sec, name in seconds[-5:]))
    assert len(handled) == len(MISTAKES) + len(OTHER_RUNS) == len(results)


def test_nobody_found_keeps_earlier_results(runs):
    result, paths = runs[0]['demo nobody found'], runs[1]
    assert result['status'] == 0, result['stderr'][-2000:]
    assert 'nobody was found' in result['stdout']
    assert Path(paths['out'], 'still', 'output.pkl').read_bytes() == b'earlier still results'
    assert result['unchanged']


@pytest.mark.parametrize('name', ['demo interrupted', 'synthetic interrupted'])
def test_ctrl_c_prints_one_line_and_leaves_outputs(runs, name):
    result, paths = runs[0][name], runs[1]
    assert result['interrupted'] and result['status'] == 130, (result['status'], result['stderr'][-2000:])
    assert 'Traceback' not in result['stderr']
    assert [line for line in result['stderr'].splitlines() if 'interrupted' in line] == \
        [line for line in result['stderr'].splitlines() if line.strip() and 'WARNING' not in line and '%' not in line
         and 'NOTE' not in line][-1:]
    assert result['unchanged']
    assert not list(Path(paths['out']).glob('.*tmp*'))


def test_recon_result_file_renders_video_and_image(runs):
    results, paths = runs
    for name in ('demo results', 'demo image results', 'demo recon video', 'demo recon image'):
        assert results[name]['status'] == 0, (name, results[name]['stderr'][-3000:])
    recon = Path(paths['ok']) / 'recon'
    assert (recon / 'walk' / 'walk_result.mp4').stat().st_size > 0
    assert (recon / 'photo' / 'photo_pymaf.png').stat().st_size > 0
    assert not (recon / 'walk' / 'output.pkl').exists()


def test_evaluation_skips_and_counts_bad_samples(runs):
    result, paths = runs[0]['eval skips bad rows'], runs[1]
    assert result['status'] == 0, result['stderr'][-3000:]
    report = json.loads(Path(paths['ok'], 'eval.json').read_text())
    assert report['results']['skipped_samples'] == 2 and report['results']['num_samples'] == 2
    assert report['bad_sample_policy'] == 'skip'
    assert any('missing.jpg' in e for e in report['results']['skipped_examples'])
    assert 'skipped: 2' in result['stdout']


def test_resume_removes_stale_temporary_files(runs):
    result, paths = runs[0]['train resume weights only'], runs[1]
    assert 'no training state' in result['stderr']
    assert not Path(paths['stale_tmp']).exists()


@pytest.mark.parametrize('argv, expected', [
    (['eval.py', '--batch_size', '0', '--device', 'cpu'], '--batch_size'),
    (['tools/make_synthetic_dataset.py', '--num_samples', '-1'], '--num_samples'),
])
def test_fresh_interpreter_path(argv, expected):
    """The same convention when the script is started as a new ``python`` process."""
    proc = subprocess.run([PY, *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and expected in errors[0]


def test_bug_prints_traceback_and_says_so(capsys):
    from utils import cli

    def crash_in_numpy():
        np.zeros(3).reshape(4)

    def crash_in_our_code():
        return {}['seed']

    for func in (crash_in_numpy, crash_in_our_code):
        assert cli.run_main(func, prog='x') == cli.EXIT_BUG
        err = capsys.readouterr().err
        assert 'Traceback' in err and 'this is a bug' in err

    def mistake():
        raise cli.InputError('--n must be >= 1, got 0', 'pass --n 1')

    def interrupt():
        raise KeyboardInterrupt

    assert cli.run_main(mistake, prog='x') == cli.EXIT_USER
    assert capsys.readouterr().err == 'error: --n must be >= 1, got 0; pass --n 1\n'
    assert cli.run_main(interrupt, prog='x') == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.count('\n') == 1


def test_demo_weights_script_follows_the_convention(tmp_path):
    """tools/train_demo_weights.sh: an argument it does not take and a missing interpreter are one error line
    and status 1; a failing step is named and its status kept; Ctrl-C is one line and status 130; nothing is
    written in any of these cases (it runs from the repository root, whose status is compared)."""
    import signal
    import time

    script = str(REPO / 'tools' / 'train_demo_weights.sh')

    def run(*args, python='false'):
        env = {**os.environ, 'PYTHON': python}
        return subprocess.run(['bash', script, *args], capture_output=True, text=True, env=env, timeout=60)

    def status():
        return subprocess.run(['git', 'status', '--porcelain', '--ignored'], cwd=REPO, capture_output=True,
                              text=True).stdout

    before = status()
    bad = run('--bogus')
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("error: unexpected argument '--bogus'")
    missing = run(python=str(tmp_path / 'no_python'))
    assert missing.returncode == 1 and missing.stderr.startswith('error: the Python interpreter')
    assert len(missing.stderr.strip().splitlines()) == 1
    failing = run()
    assert failing.returncode == 1
    assert failing.stderr.strip() == ('train_demo_weights.sh: stopped: making the synthetic datasets failed '
                                      '(exit status 1)')

    sleeper = tmp_path / 'slow_python'
    started = tmp_path / 'started'
    sleeper.write_text(f'#!/bin/sh\ntouch {started}\nexec sleep 30\n')
    sleeper.chmod(0o755)
    proc = subprocess.Popen(['bash', script], env={**os.environ, 'PYTHON': str(sleeper)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)       # Ctrl-C reaches the whole foreground process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == ('train_demo_weights.sh: interrupted while making the synthetic datasets; outputs are '
                           'left as they were')
    assert status() == before
