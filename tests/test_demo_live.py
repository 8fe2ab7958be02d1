"""demo.py --webcam (live mode), fed the sample clip as a stream: per-frame detection, online tracking,
regression and rendering, the same result files as the video pipeline."""
from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np

import demo

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / 'assets' / 'sample' / 'walkers.mp4'


def test_live_mode_on_a_stream(tmp_path, capsys):
    assert demo.main(['--webcam', str(CLIP), '--max_frames', '8', '--output_folder', str(tmp_path)]) == 0
    out = tmp_path / 'webcam'
    with open(out / 'output.pkl', 'rb') as fh:
        results = pickle.load(fh)
    assert results, 'the walkers were not found'
    for person in results.values():
        frames = person['frame_ids']
        assert set(frames) <= set(range(8)) and len(person['verts']) == len(frames)
        assert person['verts'].shape[1:] == (6890, 3) and np.isfinite(person['cam_t']).all()
    video = cv2.VideoCapture(str(out / 'webcam_result.mp4'))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert np.load(out / 'output.npz', allow_pickle=True)['img_width'] == 640
    assert 'live: 8 frames' in capsys.readouterr().out


def test_live_mode_errors_are_one_line(tmp_path, capsys):
    assert demo.main(['--webcam', str(tmp_path / 'none.mp4'), '--output_folder', str(tmp_path)]) == 1
    assert demo.main(['--webcam', '0', '--use_gt', '--anno_file', 'x.json', '--output_folder', str(tmp_path)]) == 1
    assert demo.main(['--webcam', '0', '--vid_file', str(CLIP), '--output_folder', str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith('error:') for line in err)
    assert 'cannot open camera or stream' in err[0] and 'live mode' in err[1] and 'exactly one input' in err[2]
