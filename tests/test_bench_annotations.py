"""The hand-made real-image joint annotations (bench/data/real_people_lsp14.json) and their viewer."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ANNOTATIONS = ROOT / 'bench' / 'data' / 'real_people_lsp14.json'


def _viewer():
    spec = importlib.util.spec_from_file_location('show_annotations', ROOT / 'bench' / 'show_annotations.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries() -> list[dict]:
    return json.loads(ANNOTATIONS.read_text())['images']


def test_annotation_file_is_consistent():
    entries = _entries()
    ids = [e['id'] for e in entries]
    assert len(ids) == len(set(ids))
    for entry in entries:
        w, h = entry['width'], entry['height']
        subjects = [p for p in entry['people'] if p['role'] == 'subject']
        assert subjects, entry['id']
        for person in entry['people']:
            assert person['role'] in ('subject', 'spectator')
            x0, y0, x1, y1 = person['bbox']
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (entry['id'], person['bbox'])
        for person in subjects:
            kp = np.array(person['keypoints'])
            assert kp.shape == (14, 3), entry['id']
            assert set(kp[:, 2]) <= {0, 1, 2}
            hidden, shown = kp[kp[:, 2] == 0], kp[kp[:, 2] > 0]
            assert (hidden[:, :2] == 0).all(), entry['id']
            x0, y0, x1, y1 = person['bbox']
            assert ((shown[:, 0] >= x0) & (shown[:, 0] <= x1) & (shown[:, 1] >= y0) & (shown[:, 1] <= y1)).all(), \
                (entry['id'], person['note'])
            assert person['height_px'] > 0


def test_viewer_reads_skimage_source_and_draws_every_visible_joint():
    viewer = _viewer()
    entry = next(e for e in _entries() if e['source'] == 'skimage.data.astronaut')
    image = viewer.load_source(entry['source'])
    assert image.shape == (entry['height'], entry['width'], 3) and image.dtype == np.uint8
    drawn = viewer.draw_entry(np.zeros_like(image), entry)
    for x, y, v in entry['people'][0]['keypoints']:
        if v:  # filled dot (v = 2) or ring (v = 1) around the joint
            assert drawn[max(y - 5, 0):y + 6, max(x - 5, 0):x + 6].any(), (x, y)
    assert drawn.any(axis=2).mean() < 0.2


def test_viewer_explains_how_to_get_a_missing_wheel(tmp_path):
    viewer = _viewer()
    with pytest.raises(viewer.SourceMissingError, match='pip download --no-deps ultralytics'):
        viewer.load_source('ultralytics-wheel:ultralytics/assets/bus.jpg', wheel_dir=tmp_path)
    with pytest.raises(viewer.SourceMissingError, match='--media_dir'):
        viewer.load_source('shared/media/skates.png', media_dir=tmp_path)
