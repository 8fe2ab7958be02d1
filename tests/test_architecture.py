"""The import direction of the library (core/, models/, datasets/, utils/), read from the source with `ast`.

Layers, lowest first: `utils` and `core.constants`; `core.path_config` and `core.cfgs`; `models`;
`datasets`; the rest of `core` (training, inference, evaluation); the scripts (demo.py, eval.py, train.py,
tools/, bench/, tests/). A module may import its own layer and the ones below, never a higher one; inside
`utils` the subpackages `render`, `video` and `export` do not import each other, and top-level `utils`
modules use only `utils.render` of them. Imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ('core', 'models', 'datasets', 'utils')
UTILS_SUBPACKAGES = ('utils.render', 'utils.video', 'utils.export')


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def _library_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in LIBRARY for p in sorted((ROOT / pkg).rglob('*.py'))}


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules (or module attributes) imported anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f'{path}: relative import; the project uses absolute imports'
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}' for alias in node.names)
    return names


def _project_target(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (longest matching module), or None if not ours."""
    parts = name.split('.')
    for end in range(len(parts), 0, -1):
        candidate = '.'.join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _scripts() -> set[str]:
    top = {p.stem for p in ROOT.glob('*.py')}
    return top | {'tools', 'bench', 'tests'}


def _layer(module: str) -> int:
    if module == 'core.constants' or module.split('.')[0] == 'utils':
        return 0
    if module in ('core.path_config', 'core.cfgs'):
        return 1
    top = module.split('.')[0]
    return {'models': 2, 'datasets': 3, 'core': 4}[top]


def _edges() -> list[tuple[str, str]]:
    modules = _library_modules()
    edges = []
    for name, path in modules.items():
        for imported in _imports(path):
            target = _project_target(imported, modules)
            if target is not None and target != name and not name.startswith(target + '.') \
                    and not (target in LIBRARY and imported == target):
                edges.append((name, target))
    return sorted(set(edges))


def test_library_never_imports_a_script():
    scripts = _scripts()
    bad = [f'{name} imports {imported}' for name, path in _library_modules().items()
           for imported in _imports(path) if imported.split('.')[0] in scripts]
    assert not bad, bad


def test_imports_point_down_the_layers():
    bad = [f'{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})' for a, b in _edges() if _layer(b) > _layer(a)]
    assert not bad, bad


def _utils_part(module: str) -> str:
    for sub in UTILS_SUBPACKAGES:
        if module == sub or module.startswith(sub + '.'):
            return sub
    return 'utils'


def test_utils_subpackages_keep_to_themselves():
    bad = []
    for a, b in _edges():
        if not (a.startswith('utils') and b.startswith('utils')):
            continue
        part_a, part_b = _utils_part(a), _utils_part(b)
        if part_b == 'utils' or part_a == part_b or (part_a == 'utils' and part_b == 'utils.render'):
            continue
        bad.append(f'{a} imports {b}')
    assert not bad, bad


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for a, b in _edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(' -> '.join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, cycles


@pytest.mark.parametrize('package', ['core', 'models', 'datasets', 'utils', 'core.inference', 'core.evaluation',
                                     *UTILS_SUBPACKAGES])
def test_every_package_says_what_it_owns(package):
    path = ROOT / Path(*package.split('.')) / '__init__.py'
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc) > 100, f'{path}: a docstring saying what the package owns'
    if package.startswith('utils') or package in ('core.inference', 'core.evaluation'):
        assert 'import' in doc, f'{path}: the docstring says what the package may import'


def test_the_checker_sees_lazy_imports(tmp_path):
    source = tmp_path / 'm.py'
    source.write_text('def f():\n    from models.smpl import SMPL\n    import demo\n')
    assert {'models.smpl', 'models.smpl.SMPL', 'demo'} <= _imports(source)


def _global_config_reads(path: Path) -> list[str]:
    """``from core.cfgs import cfg`` and ``cfgs.cfg`` in a file: reads of a shared, mutable config."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == 'core.cfgs':
            found += [f'{path.name}:{node.lineno}' for alias in node.names if alias.name == 'cfg']
        elif isinstance(node, ast.Attribute) and node.attr == 'cfg' and isinstance(node.value, ast.Name) \
                and node.value.id == 'cfgs':
            found.append(f'{path.name}:{node.lineno}')
    return found


def test_no_shared_config():
    """Config nodes are passed explicitly; `core.cfgs` has no module-level node to fall back on."""
    import core.cfgs

    assert not hasattr(core.cfgs, 'cfg')
    bad = [hit for path in _library_modules().values() for hit in _global_config_reads(path)]
    assert not bad, bad


def test_no_argparse_namespaces_in_the_library():
    """Scripts parse the command line and pass plain values down; only train.py's parser lives in `core`
    (`core.train_options`, which returns a dataclass), and `utils.cli` holds the parser class every script
    builds its parser from (it reports a bad command line as one error line; it never sees a namespace)."""
    bad = []
    for name, path in _library_modules().items():
        tree = ast.parse(path.read_text(), str(path))
        if name not in ('core.train_options', 'utils.cli') and 'argparse' in _imports(path):
            bad.append(f'{name} imports argparse')
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                bad += [f'{name}.{node.name}({p.arg})' for p in params if p.arg in ('args', 'opt', 'namespace')]
    assert not bad, bad
