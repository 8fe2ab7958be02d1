"""ONNX Runtime against PyTorch on the same network and crops (CPU).

    python3 bench/bench_onnx.py                                   # the ResNet-50 PyMAF (untrained), batch 1 and 8
    python3 bench/bench_onnx.py --checkpoint assets/demo_weights/pymaf_lite_standin.pt

Exports the network to a temporary file (tools/export_onnx.py's exporter), then times ONNX Runtime's
session.run and the PyTorch forward it was exported from (eval, inference mode, fp32), alternately, with the
same number of threads; ONNX Runtime's idle threads do not spin, so neither steals the other's cores.
Prints the median of each.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None, help='PyMAF checkpoint (default: untrained ResNet-50 PyMAF)')
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    from core.inference.predictor import PyMAFPredictor
    from utils.export.onnx_export import INPUT_NAME, FinalEstimate, export_onnx

    torch.set_num_threads(args.threads)
    model = PyMAFPredictor.from_checkpoint(args.checkpoint, 'cpu').model
    wrapper = FinalEstimate(model.float().eval())
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / 'pymaf.onnx')
        session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        print(f'onnxruntime {ort.__version__}, torch {torch.__version__}, threads {args.threads}, '
              f'{args.checkpoint or "untrained ResNet-50 PyMAF"}')
        print('| batch | ONNX Runtime ms | PyTorch ms | speed-up |')
        print('|---|---|---|---|')
        for batch in args.batch_sizes:
            images = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
            tensor = torch.from_numpy(images)

            def run_ort():
                session.run(None, {INPUT_NAME: images})

            def run_torch():
                with torch.inference_mode():
                    wrapper(tensor)
            times = {run_ort: [], run_torch: []}
            for fn in times:
                fn()
                fn()
            for _ in range(args.repeats):
                for fn, samples in times.items():
                    start = time.perf_counter()
                    fn()
                    samples.append(time.perf_counter() - start)
            t_ort, t_torch = (statistics.median(samples) * 1e3 for samples in times.values())
            print(f'| {batch} | {t_ort:.1f} | {t_torch:.1f} | {t_torch / t_ort:.2f}x |')


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utils import cli

    sys.exit(cli.run_main(lambda: main(), prog='bench_onnx.py'))
