"""Run many command lines of the repository's scripts quickly: one process imports torch once, then forks
a child per case that runs the script as ``__main__`` (as ``python script.py ...`` or ``python -m mod ...``
would), with its own stdout/stderr files and exit status.

    python tests/cli_runner.py cases.json results.json

Each case: ``{"name", "argv": ["eval.py" | "-m", "tools.export", ...args], "cwd",
"interrupt_when": glob or null, "timeout": seconds, "watch": [folders]}``. With ``interrupt_when``, the
child gets SIGINT (a Ctrl-C) as soon as a path matching the glob exists. Each result: ``{"name",
"status", "stdout", "stderr", "seconds", "interrupted", "unchanged"}``; ``unchanged`` says whether every
watched folder is byte-for-byte the same after the case (names, file contents and sub-folders). Used by
tests/test_cli_errors.py (a fresh interpreter per case costs seconds of torch start-up on a small CPU; a
fork costs milliseconds).
"""
from __future__ import annotations

import glob
import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Imported once here so that every forked child starts warm. Importing runs no parallel torch op, so the
# children may use OpenMP threads safely.
import cv2  # noqa: E402,F401
import numpy  # noqa: E402,F401
import torch  # noqa: E402,F401

import core.cfgs  # noqa: E402,F401
import core.inference.predictor  # noqa: E402,F401
import datasets.base_dataset  # noqa: E402,F401
import models.pymaf_net  # noqa: E402,F401


def _child(case: dict, out_file: str, err_file: str) -> None:
    """In the forked child: redirect the output, run the script as __main__, exit with its status."""
    out_fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err_fd = os.open(err_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.chdir(case.get('cwd') or REPO)
    argv = list(case['argv'])
    status = 0
    try:
        if argv[0] == '-m':
            sys.argv = [argv[1]] + argv[2:]
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            script = str(REPO / argv[0])
            sys.argv = [script] + argv[1:]
            sys.path[0] = str(Path(script).parent)
            runpy.run_path(script, run_name='__main__')
    except SystemExit as done:
        code = done.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # an exception escaping the script: Python would print it and exit 1
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def tree_hash(folder: str) -> str:
    """SHA-256 over the sorted relative paths and file contents under ``folder`` ('' when it is missing)."""
    import hashlib

    root = Path(folder)
    if not root.exists():
        return ''
    digest = hashlib.sha256()
    for path in sorted(root.rglob('*')):
        digest.update(str(path.relative_to(root)).encode() + b'\0')
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_case(case: dict, scratch: Path, index: int) -> dict:
    out_file, err_file = str(scratch / f'{index}.out'), str(scratch / f'{index}.err')
    before = [tree_hash(folder) for folder in case.get('watch', [])]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(case, out_file, err_file)
    interrupted = False
    deadline = start + case.get('timeout', 120)
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if case.get('interrupt_when') and not interrupted and glob.glob(case['interrupt_when']):
            os.kill(pid, signal.SIGINT)
            interrupted = True
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    status = os.waitstatus_to_exitcode(wait_status)
    return {'name': case['name'], 'status': status, 'stdout': Path(out_file).read_text(errors='replace'),
            'stderr': Path(err_file).read_text(errors='replace'), 'seconds': time.perf_counter() - start,
            'interrupted': interrupted,
            'unchanged': before == [tree_hash(folder) for folder in case.get('watch', [])]}


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    scratch = Path(sys.argv[2]).with_suffix('.logs')
    scratch.mkdir(exist_ok=True)
    results = [run_case(case, scratch, i) for i, case in enumerate(cases)]
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
