"""Training entry point (not implemented yet).

Training PyMAF (both stages, DensePose supervision with the project's renderer, TensorBoard, resume,
distributed runs) is tracked as its own piece of work. This script says so instead of pretending.
"""
import sys


def main() -> int:
    print('train.py: training is not implemented yet in this re-implementation; '
          'see README.md "Status". The model, evaluation and demo are available.', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
