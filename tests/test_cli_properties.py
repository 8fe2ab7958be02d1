"""Property-based tests: broken SPIN-format annotation files and broken configs give clear errors only.

Whatever hypothesis generates (fields missing or extra, wrong shapes, wrong types, NaN and inf, random or
truncated bytes; unknown keys, values of the wrong type, YAML that is not a mapping), the reader and the
config parser either accept the input or raise a `utils.cli.UserError` (one line naming the file or key);
never an exception from deep inside numpy, yacs or torch.
"""
from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cfgs
from datasets.base_dataset import ROW_SHAPES, TEXT_FIELDS, BaseDataset
from utils.cli import UserError, one_line

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = (np.float64, np.float32, np.int64, np.bool_, 'U3', object)
SPECIAL = (np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308)


@st.composite
def field_arrays(draw, row_shape: tuple, n: int) -> np.ndarray:
    """An array meant to be (n, *row_shape), sometimes with another shape, type or non-finite values."""
    shape = (n,) + row_shape
    if draw(st.integers(0, 4)) == 0:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(DTYPES)) if draw(st.integers(0, 3)) == 0 else np.float64
    values = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape)
    if draw(st.booleans()) and values.size:
        flat = values.reshape(-1)
        flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(SPECIAL))
    if dtype == 'U3':
        return values.astype(str).astype('U3')
    if dtype is object:
        out = np.empty(shape, dtype=object)
        out.reshape(-1)[:] = [draw(st.sampled_from([None, 'x', 1.5, (1, 2)])) for _ in range(values.size)]
        return out
    with np.errstate(invalid='ignore', over='ignore'):
        return values.astype(dtype)


@st.composite
def annotation_dicts(draw) -> dict:
    """A SPIN-format annotation with random fields left out, added or broken."""
    n = draw(st.integers(0, 4))
    data = {}
    if draw(st.integers(0, 5)):
        names = np.array([f'images/{i:03d}.jpg' for i in range(n)])
        data['imgname'] = names if draw(st.integers(0, 4)) else draw(field_arrays((), n))
    for key, row_shape in ROW_SHAPES.items():
        if draw(st.booleans()) or key in ('center', 'scale') and draw(st.integers(0, 5)):
            data[key] = draw(field_arrays(row_shape, n))
    for key in TEXT_FIELDS[1:]:
        if draw(st.integers(0, 3)) == 0:
            data[key] = np.array(['m', 'f'] * n)[:draw(st.integers(0, n + 1))]
    if draw(st.integers(0, 4)) == 0:
        data[draw(st.text('abcxyz_', min_size=1, max_size=6))] = np.zeros(draw(st.integers(0, 3)))
    return data


def _read(path: str) -> None:
    """Open the file as the dataset reader does and read the first sample (images are absent)."""
    dataset = BaseDataset('synthetic', npz_path=path, img_dir=os.path.dirname(path))
    assert len(dataset) > 0
    try:
        dataset[0]
    except FileNotFoundError as err:
        assert 'images/000.jpg' in str(err) or 'not found' in str(err)


def _assert_clear(err: BaseException, name: str) -> None:
    assert isinstance(err, UserError), f'{type(err).__name__}: {err}'
    line = one_line(err)
    assert name in line and len(line) < 400, line


@SETTINGS
@given(data=annotation_dicts())
def test_reader_accepts_or_names_the_problem(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'ann.npz')
        np.savez(path, **data)
        try:
            _read(path)
        except FileNotFoundError as err:
            assert not isinstance(err, UserError) or 'ann.npz' in str(err)
        except Exception as err:  # noqa: BLE001 (the property: nothing but a clear UserError)
            _assert_clear(err, 'ann.npz')


@SETTINGS
@given(cut=st.floats(0.0, 1.0), noise=st.binary(max_size=64), mode=st.sampled_from(['truncate', 'bytes', 'flip']))
def test_reader_rejects_damaged_files_clearly(cut, noise, mode):
    buffer = io.BytesIO()
    np.savez(buffer, imgname=np.array(['a.jpg', 'b.jpg']), center=np.zeros((2, 2)), scale=np.ones(2),
             pose=np.zeros((2, 72)), shape=np.zeros((2, 10)))
    raw = buffer.getvalue()
    if mode == 'truncate':
        raw = raw[:int(cut * len(raw))]
    elif mode == 'bytes':
        raw = noise
    else:
        at = int(cut * (len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'damaged.npz')
        with open(path, 'wb') as f:
            f.write(raw)
        try:
            _read(path)
        except FileNotFoundError as err:
            assert not isinstance(err, UserError) or 'damaged.npz' in str(err)
        except Exception as err:  # noqa: BLE001
            _assert_clear(err, 'damaged.npz')


def _leaf_keys(node, prefix=''):
    for key, value in node.items():
        if isinstance(value, type(node)):
            yield from _leaf_keys(value, f'{prefix}{key}.')
        else:
            yield prefix + key


LEAF_KEYS = sorted(_leaf_keys(cfgs.get_cfg_defaults()))
VALUE_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['1', '-1', '0.5', '1e400', 'nan', 'True', 'None', '[1, 2]', '[', '(1,', '{}', "'x'", '[[[[]]]]',
                     '1' * 400, '__import__("os")', 'res50', '[256, 128]']),
    st.integers().map(str), st.floats(allow_nan=True).map(str))


@SETTINGS
@given(pairs=st.lists(st.tuples(st.one_of(st.sampled_from(LEAF_KEYS), st.sampled_from(['MODEL', 'TRAIN', 'X.Y']),
                                          st.text(max_size=10)), VALUE_TEXT), max_size=4),
       odd=st.booleans())
def test_misc_overrides_apply_or_name_the_key(pairs, odd):
    flat = [item for pair in pairs for item in pair] + (['MODEL.PyMAF.N_ITER'] if odd else [])
    try:
        cfgs.update_cfg(None, flat)
    except Exception as err:  # noqa: BLE001
        assert isinstance(err, cfgs.ConfigError), f'{type(err).__name__}: {err}'
        assert '--misc' in one_line(err) and len(one_line(err)) < 400


YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(['TRAIN', 'BATCH_SIZE', 'LOSS', 'KP_2D_W', 'x', '1']),
                                            inner, max_size=3)),
    max_leaves=8)


@SETTINGS
@given(content=st.one_of(
    st.text(max_size=80),
    st.dictionaries(st.sampled_from(['TRAIN', 'LOSS', 'MODEL', 'SEED_VALUE', 'NOPE']), YAML_VALUES,
                    max_size=3).map(yaml.safe_dump),
    st.builds(lambda key, value: yaml.safe_dump({key.split('.')[0]: {key.split('.')[-1]: value}}),
              st.sampled_from(LEAF_KEYS), YAML_VALUES)))
def test_config_files_merge_or_name_the_file(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'cfg.yaml')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(content)
        try:
            cfgs.update_cfg(path)
        except Exception as err:  # noqa: BLE001
            assert isinstance(err, cfgs.ConfigError), f'{type(err).__name__}: {err}'
            assert 'cfg.yaml' in one_line(err) and len(one_line(err)) < 400


@pytest.mark.parametrize('pairs, expected', [
    (['MODEL.PyMAF.N_ITER', 'two'], '--misc MODEL.PyMAF.N_ITER two'),
    (['TRAIN', '1'], "unknown config key 'TRAIN'"),
    (['SOLVER.EPOCHS', '[1, 2'], '--misc SOLVER.EPOCHS'),
])
def test_misc_examples(pairs, expected):
    with pytest.raises(cfgs.ConfigError, match=expected.replace('[', r'\[')):
        cfgs.update_cfg(None, pairs)
