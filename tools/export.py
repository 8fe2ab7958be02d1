"""Export a demo result file to animation tools: animated glTF (.glb), BVH and a tidy SMPL .npz per person.

    python3 -m tools.export output/clip/output.pkl --out output/clip/export --formats glb bvh npz

See docs/export.md for the axes, units and rotation order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.build import load_body_model
from utils import cli
from utils.export.animation import FORMATS, export_results, load_demo_results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('result_file', help="demo.py's output.pkl or output.npz")
    parser.add_argument('--out', default=None, help='output folder (default: <result folder>/export)')
    parser.add_argument('--formats', nargs='+', default=list(FORMATS), choices=FORMATS, help='what to write')
    parser.add_argument('--fps', type=float, default=None,
                        help='video frame rate (default: from the output.npz beside the result file)')
    parser.add_argument('--img_height', type=float, default=None,
                        help='image height in pixels, for results without cam_t (default: from output.npz)')
    parser.add_argument('--person_ids', type=int, nargs='+', default=None, help='export only these people')
    parser.add_argument('--gender', default='neutral', choices=('neutral', 'male', 'female'),
                        help='body model whose skeleton is used (the demo uses neutral)')
    parser.add_argument('--checkpoint', default=None,
                        help='take the body model from this PyMAF checkpoint (use the one the demo ran with when '
                             'it carries SMPL, as the released checkpoint does, and data/smpl is absent)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry (utils/cli.py convention); returns the exit status."""
    return cli.run_main(lambda: run(parse_args(argv)), prog='tools.export')


def run(args) -> int:
    if args.fps is not None:
        cli.check_positive('--fps', args.fps)
    if args.img_height is not None:
        cli.check_positive('--img_height', args.img_height)
    cli.check_input_file(args.result_file, 'result_file', 'result file')
    out_dir = Path(args.out) if args.out else Path(args.result_file).parent / 'export'
    cli.check_writable_dir(out_dir, '--out')
    results, meta = load_demo_results(args.result_file)
    fps = args.fps if args.fps is not None else meta.get('fps')
    if fps is None:
        raise cli.InputError('the frame rate is unknown (no output.npz beside the result file)', 'give --fps')
    if args.person_ids is not None:
        missing = sorted(set(args.person_ids) - set(results))
        if missing:
            raise cli.InputError(f'no person ids {missing} in the result file (it has {sorted(results)})',
                                 'pass ids the file holds to --person_ids')
        results = {pid: results[pid] for pid in args.person_ids}
    if not results:
        print('nobody in the result file: nothing to export')
        return 0
    smpl, body_model = load_body_model(args.gender, args.checkpoint)
    img_height = args.img_height if args.img_height is not None else meta.get('img_height')
    with cli.staged_output(out_dir) as stage:
        written = export_results(results, stage, fps, tuple(args.formats), smpl=smpl, img_height=img_height,
                                 body_model=body_model)
    written = [out_dir / Path(p).relative_to(stage) for p in written]
    print(f'{len(results)} people, {fps:.3f} fps, body model {body_model}: wrote {len(written)} files to {out_dir}')
    for path in written:
        print(f'  {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
