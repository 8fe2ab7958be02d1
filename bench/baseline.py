"""Import the renderer and video writers of another git revision, for before/after timings in one process.

    from baseline import load_baseline
    old = load_baseline('50769cb')   # {'renderer': module, 'rasterizer': module, 'io': module, 'geometry': module}
    old['renderer'].PyRenderer(faces)

The files are taken with ``git show REV:path`` into a temporary folder and imported under other names
(``baseline_renderer``, ...), with their imports of each other redirected, so both versions live side by side.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = {'geometry': 'utils/geometry.py', 'rasterizer': 'utils/render/rasterizer.py',
         'renderer': 'utils/render/renderer.py', 'io': 'utils/video/io.py'}


def load_baseline(rev: str) -> dict:
    """The modules of ``FILES`` at git revision ``rev``, keyed by their short names."""
    folder = Path(tempfile.mkdtemp(prefix='bench_baseline_'))
    for short, rel in FILES.items():
        src = subprocess.run(['git', '-C', str(REPO), 'show', f'{rev}:{rel}'], check=True, capture_output=True,
                             text=True).stdout
        for other, other_rel in FILES.items():
            src = src.replace(f'from {other_rel[:-3].replace("/", ".")} import', f'from baseline_{other} import')
        (folder / f'baseline_{short}.py').write_text(src)
    modules = {}
    for short in FILES:
        name = f'baseline_{short}'
        spec = importlib.util.spec_from_file_location(name, folder / f'{name}.py')
        modules[short] = sys.modules[name] = importlib.util.module_from_spec(spec)
    for short in FILES:  # after all are registered, so that their imports of each other resolve
        modules[short].__spec__.loader.exec_module(modules[short])
    return modules
