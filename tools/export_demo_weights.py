"""Turn a train.py checkpoint into compact demo weights (half precision, no body-model arrays, config inside).

    python3 -m tools.export_demo_weights logs/pymaf_res18/demo_weights_lite/checkpoints/model_latest.pt \\
        --out assets/demo_weights/pymaf_lite_standin.pt --eval_json results/demo_weights_eval.json

The demo loads such a file when there is no released checkpoint (see demo.py) and prints its description.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import cli  # noqa: E402 (after the path set-up for `python tools/export_demo_weights.py`)

DESCRIPTION = ('PyMAF-lite demo weights trained by this project on its own synthetic images of the stand-in '
               'body model (not SMPL, not the paper\'s data): for trying the pipeline, not comparable to the paper')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='train.py checkpoint (holds the config and the body model)')
    parser.add_argument('--out', default='assets/demo_weights/pymaf_lite_standin.pt', help='output weight file')
    parser.add_argument('--eval_json', default=None, help='eval.py results to record in the file')
    parser.add_argument('--command', default='tools/train_demo_weights.sh', help='how the weights were made')
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> Path:
    from models.build import build_from_checkpoint, checkpoint_cfg, save_compact_weights
    from utils.saver import read_checkpoint

    cli.check_input_file(args.checkpoint, 'checkpoint', 'checkpoint')
    cli.check_writable_file(args.out, '--out')
    if args.eval_json:
        cli.check_input_file(args.eval_json, '--eval_json', 'results file')
    data = read_checkpoint(args.checkpoint)
    if data.get('body_model') not in ('standin', 'smpl'):
        raise cli.InputError(f'{args.checkpoint} does not say which body model it was trained with',
                             'pass a checkpoint written by train.py')
    model = build_from_checkpoint(data, args.checkpoint)
    body = data['body_model']
    record = {'training': {'command': args.command, 'source_checkpoint': str(args.checkpoint),
                           'epoch': data.get('epoch'), 'step': data.get('total_step_count'),
                           'seed': data.get('seed'), 'batch_size': data.get('batch_size')}}
    if args.eval_json:
        try:
            with open(args.eval_json) as f:
                record['evaluation'] = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise cli.DataFileError(f'--eval_json {args.eval_json} is not JSON ({type(err).__name__})',
                                    'pass the results file eval.py wrote') from None
    path = save_compact_weights(args.out, model, checkpoint_cfg(data), body, DESCRIPTION, extra=record)
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB, body model: {body})')
    return path


if __name__ == '__main__':
    sys.exit(cli.run_main(lambda: main(parse_args()), prog='export_demo_weights'))
