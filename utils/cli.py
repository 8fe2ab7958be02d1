"""One convention for every command-line entry point (demo.py, eval.py, eval_coco.py, train.py, tools/*).

- A user's mistake (a bad flag or config value, a missing, unreadable or malformed file, a place that
  cannot be written) prints exactly one line ``error: <what is wrong>; <how to fix it>`` to stderr and
  exits with status 1 (`EXIT_USER`); checks run before any output is written.
- An unexpected failure is a bug: the traceback is printed, then one line saying so; status 2 (`EXIT_BUG`).
- Ctrl-C prints one line and exits with status 130 (`EXIT_INTERRUPTED`); outputs are left as they were
  (results are staged in a temporary folder, see `staged_output`; training saves its checkpoint first).

What counts as a user's mistake (`is_user_error`): a `UserError` (or subclass), an `OSError` naming a file
(missing, permission denied, disk full...), and a `ValueError`, `ImportError` (an optional package) or
`OSError` raised deliberately by the repository's own code (a ``raise`` statement in a file of this
repository: library functions report bad input that way).
A `ValueError` raised inside numpy, torch or another library, and every other exception type, is a bug.

Typical use in a script::

    def main(argv=None) -> int:
        return cli.run_main(lambda: run(parse_args(argv)), prog='eval.py')
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

EXIT_USER = 1
EXIT_BUG = 2
EXIT_INTERRUPTED = 130

REPO_ROOT = Path(__file__).resolve().parents[1]

# Longest error line printed; longer messages are cut (the full text is in the exception, for library use).
MAX_LINE = 400


class UserError(Exception):
    """A user's mistake: ``what`` is wrong and, when known, how to ``fix`` it; printed as one line."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        super().__init__(f'{what}; {fix}' if fix else what)

    def __str__(self) -> str:  # KeyError and OSError would otherwise quote or decorate the message
        return str(self.args[0]) if self.args else ''


class InputError(UserError, ValueError):
    """A bad value: a flag, a config key, a field of a data file (also a ValueError for library callers)."""


class DataFileError(InputError):
    """A data file that cannot be used: not the expected format, fields missing, wrong shapes, bad values."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (also a FileNotFoundError for library callers)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the convention: a bad command line raises `InputError` (one line, status 1), no usage dump."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        raise InputError(message, f'see {self.prog} --help')


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (whitespace collapsed), cut to `MAX_LINE` characters."""
    if isinstance(err, OSError) and not isinstance(err, UserError) and err.filename is not None:
        verb = 'write' if isinstance(err, PermissionError | IsADirectoryError) or err.errno in (28, 30) else 'read'
        text = (f'cannot {verb} {err.filename}: {err.strerror or type(err).__name__}; '
                'check the path and its permissions')
    else:
        text = str(err) or type(err).__name__
    text = ' '.join(text.split())
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + '...'


def _raised_by_repository(err: BaseException) -> bool:
    """True when the innermost frame of ``err`` is a ``raise`` statement in a file of this repository."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    try:
        inside = Path(last.filename).resolve().is_relative_to(REPO_ROOT) and '.venv' not in Path(last.filename).parts
    except (OSError, ValueError):
        return False
    return inside and (last.line or '').lstrip().startswith('raise')


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` reports a user's mistake (see the module docstring) rather than a bug."""
    if isinstance(err, UserError) or (isinstance(err, OSError) and err.filename is not None):
        return True
    return isinstance(err, ValueError | ImportError | OSError) and _raised_by_repository(err)


def run_main(func: Callable[[], object], prog: str) -> int:
    """Run a script's work with the convention of the module docstring; returns the exit status.

    ``func`` returns None, or an int exit status of its own (0 when it returns anything else).
    """
    try:
        status = func()
    except KeyboardInterrupt:
        print(f'{prog}: interrupted; outputs are left as they were', file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 (the one place that sorts failures into mistakes and bugs)
        if is_user_error(err):
            print(f'error: {one_line(err)}', file=sys.stderr)
            return EXIT_USER
        traceback.print_exc()
        print(f'error: {prog} failed unexpectedly ({type(err).__name__}); this is a bug: please report it with '
              'the traceback above', file=sys.stderr)
        return EXIT_BUG
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


# ------------------------------------------------------------------------------------------ checks up front
def check_min(flag: str, value, minimum=1) -> None:
    """``value`` of ``flag`` must be at least ``minimum`` (a count, a size, a batch size)."""
    if value is None or value < minimum:
        raise InputError(f'{flag} must be >= {minimum}, got {value}', f'pass {flag} {max(minimum, 1)} or more')


def check_positive(flag: str, value: float) -> None:
    """``value`` of ``flag`` must be a finite number > 0."""
    if not value > 0 or value == float('inf'):
        raise InputError(f'{flag} must be a positive number, got {value}', f'pass {flag} with a value > 0')


def check_input_file(path: str | os.PathLike, flag: str, what: str = 'file') -> Path:
    """``path`` must be an existing, readable file; returns it as a Path."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f'{flag}: {what} not found: {path}', 'check the path')
    if not path.is_file():
        raise UserError(f'{flag}: {path} is a folder, not a {what}', f'pass the {what} itself')
    if not os.access(path, os.R_OK):
        raise UserError(f'{flag}: cannot read {path} (permission denied)', 'check its permissions')
    return path


def check_input_dir(path: str | os.PathLike, flag: str, what: str = 'folder') -> Path:
    """``path`` must be an existing folder; returns it as a Path."""
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise UserError(f'{flag}: {what} {path} is a file, not a folder', 'check the path')
        raise MissingFileError(f'{flag}: {what} {path} not found', 'check the path')
    return path


def check_writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """A folder that exists and is writable, or can be created (its nearest existing parent is writable)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f'{flag}: cannot write into {path}: {probe} is a file', f'choose another {flag}')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f'{flag}: cannot write into {path} ({probe} is not writable)',
                        f'choose a writable {flag}')
    return path


def check_writable_file(path: str | os.PathLike, flag: str) -> Path:
    """A file path that can be written: not a folder, and its folder exists or can be created."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f'{flag}: {path} is a folder', f'give {flag} a file name')
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f'{flag}: cannot overwrite {path} (permission denied)', f'choose another {flag}')
    check_writable_dir(path.parent, flag)
    return path


def check_device(name: str | None, flag: str = '--device'):
    """A torch device that exists on this machine ('auto'/None: cuda when available, else cpu)."""
    import torch

    if name in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f'{flag} {name}: not a device name', 'use cpu, cuda or cuda:N') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise InputError(f'{flag} {name}: CUDA is not available on this machine', f'use {flag} cpu')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f'{flag} {name}: this machine has {torch.cuda.device_count()} GPU(s)',
                             f'use {flag} cuda:0')
    elif device.type != 'cpu':
        raise InputError(f'{flag} {name}: only cpu and cuda devices are supported', f'use {flag} cpu')
    return device


# ----------------------------------------------------------------------------------------------- outputs
def missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; others stay."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def publish(tmp_dir: Path, out_dir: Path) -> int:
    """Move every file of ``tmp_dir`` into ``out_dir``, replacing only files of the same names; returns the count.

    Nothing is created when ``tmp_dir`` holds no file.
    """
    files = [p for p in sorted(Path(tmp_dir).rglob('*')) if not p.is_dir()]
    for item in files:
        target = Path(out_dir) / item.relative_to(tmp_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(item), str(target))
    return len(files)


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` for a run's results; they move into ``out_dir`` only on success.

    On an error or Ctrl-C the temporary folder is deleted and ``out_dir`` is left as it was; folders that
    were created only to hold it are removed again if they stay empty (also when the run wrote nothing).
    """
    out_dir = Path(out_dir)
    created = missing_folders(out_dir.parent)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.tmp-', dir=out_dir.parent))
    try:
        yield tmp
        publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = 'wb') -> Path:
    """Write ``path`` through a temporary file in its folder, then rename: never a half-written file.

    ``write`` is called with the open temporary file. The folder must exist or be creatable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
