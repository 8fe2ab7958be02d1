"""ONNX export: the exported graph runs in ONNX Runtime at any batch size and matches PyTorch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tools import export_onnx
from utils.export.onnx_export import OUTPUTS, onnx_session, run_onnx

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / 'assets' / 'demo_weights' / 'pymaf_lite_standin.pt'


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp('onnx') / 'pymaf.onnx'
    assert export_onnx.main(['--checkpoint', str(DEMO_WEIGHTS), '--out', str(path)]) == 0  # includes the check
    return path


def test_export_matches_pytorch_and_documents_itself(exported, capsys):
    proto = onnx.load(str(exported), load_external_data=False)
    assert [o.name for o in proto.graph.output] == list(OUTPUTS)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert 'ImageNet' in meta['input'] and json.loads(meta['outputs']) == OUTPUTS
    assert meta['body_model'] == 'standin' and DEMO_WEIGHTS.name in meta['weights'] and meta['description']


@pytest.mark.parametrize('batch', [1, 4])
def test_exported_model_takes_any_batch(exported, batch):
    images = np.random.default_rng(batch).normal(size=(batch, 3, 224, 224)).astype(np.float32)
    out = run_onnx(onnx_session(exported), images)
    assert out['verts'].shape == (batch, 6890, 3) and out['pose_aa'].shape == (batch, 72)
    assert out['rotmat'].shape == (batch, 24, 3, 3) and out['kp_2d'].shape == (batch, 49, 2)
    rotmat = out['rotmat'].reshape(-1, 3, 3)
    assert np.allclose(rotmat @ rotmat.transpose(0, 2, 1), np.eye(3), atol=1e-4)
    assert all(np.isfinite(v).all() for v in out.values())


def test_missing_checkpoint_is_one_error_line(tmp_path, capsys):
    assert export_onnx.main(['--checkpoint', str(tmp_path / 'none.pt'), '--out', str(tmp_path / 'x.onnx')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and 'none.pt' in err[0]
