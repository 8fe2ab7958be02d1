"""Export PyMAF to ONNX (crops in; pose, shape, camera, mesh and joints out) and check it with ONNX Runtime.

    python3 -m tools.export_onnx                                   # the demo's weights -> output/pymaf.onnx
    python3 -m tools.export_onnx --checkpoint data/pretrained_model/PyMAF_model_checkpoint.pt --out pymaf.onnx

The weights are chosen as demo.py chooses them (--checkpoint, else the released checkpoint, else the built-in
demo weights). The batch dimension is dynamic. After writing, the model runs in ONNX Runtime on random
crops at batch 1 and 3 and is compared with PyTorch; --no_check skips that. See docs/export.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import cli  # noqa: E402 (after the path set-up for `python tools/export_onnx.py`)

# Largest absolute difference from PyTorch accepted by the check (metres, radians, normalised pixels).
CHECK_TOLERANCE = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from utils.export.onnx_export import DEFAULT_OPSET

    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None,
                        help='PyMAF checkpoint (default: as demo.py: the released one, else the demo weights)')
    parser.add_argument('--out', default='output/pymaf.onnx', help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset version')
    parser.add_argument('--cfg_file', default=None, help='model config (default: the one the checkpoint holds)')
    parser.add_argument('--misc', nargs='*', default=None, help='config overrides as KEY VALUE pairs')
    parser.add_argument('--no_check', action='store_true', help='do not compare ONNX Runtime with PyTorch')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry (utils/cli.py convention); returns the exit status."""
    return cli.run_main(lambda: run(parse_args(argv)), prog='tools.export_onnx')


def run(args) -> int:
    from core import path_config
    from core.cfgs import load_cfg
    from core.inference.predictor import PyMAFPredictor, find_checkpoint
    from utils.export.onnx_export import DEFAULT_OPSET, compare_with_torch, export_onnx
    from utils.saver import read_checkpoint

    cli.check_min('--opset', args.opset, DEFAULT_OPSET)
    cli.check_writable_file(args.out, '--out')
    if args.cfg_file:
        cli.check_input_file(args.cfg_file, '--cfg_file', 'config file')
    load_cfg(args.cfg_file, args.misc)
    checkpoint, weights_desc = find_checkpoint(args.checkpoint, path_config.PYMAF_CHECKPOINT,
                                               path_config.DEMO_WEIGHTS_DIR)
    data = read_checkpoint(checkpoint) if checkpoint is not None else None
    model = PyMAFPredictor.from_checkpoint(checkpoint, 'cpu', checkpoint_data=data, cfg_file=args.cfg_file,
                                           misc=args.misc).model
    metadata = {'weights': weights_desc, 'body_model': (data or {}).get('body_model', 'smpl or stand-in'),
                'description': (data or {}).get('description', '')}
    from core.inference import lean

    # The lean forward (batch norms folded, intermediate feedback steps posing only the vertices they read):
    # the same outputs, a smaller graph; the check below compares with the network itself.
    exported = lean.LeanPyMAF(model) if lean.supports(model) else model
    path = export_onnx(exported, args.out, opset=args.opset, metadata=metadata)
    size_mb = path.stat().st_size / 1e6
    print(f'wrote {path} ({size_mb:.1f} MB) from {weights_desc}')
    if args.no_check:
        return 0
    worst = compare_with_torch(path, model)
    print('ONNX Runtime vs PyTorch, largest difference: ' + ', '.join(f'{k} {v:.1e}' for k, v in worst.items()))
    if max(worst.values()) > CHECK_TOLERANCE:
        print(f'error: ONNX Runtime differs from PyTorch by more than {CHECK_TOLERANCE}; the file is written but '
              'not faithful: report it with the lines above', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
