"""No module reaches into another module's private names (issue 14, must-show 2).

A name starting with one underscore is private to its module; a module whose name starts with one is
private to its package. So, across the project's own code (pipeline/, hydra_plugins/, bench/, tests/):

- ``from x import _y`` is refused unless ``_y`` is a private *module* of the importer's own package;
- ``from a._b import y`` / ``import a._b`` are refused unless the importer lives in package ``a``;
- ``mod._y`` (attribute access on a name bound by an import of a project module) is refused.

Third-party privates (``hydra._internal``: the only home of Hydra's BasicSweeper) are out of scope.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("pipeline", "hydra_plugins", "bench", "tests")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _package_of(path: Path, root: Path) -> str:
    """Dotted package that holds ``path`` (``pipeline/launch/lsf.py`` -> ``pipeline.launch``)."""
    return ".".join(path.relative_to(root).parent.parts)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_project(module: str) -> bool:
    return module.split(".")[0] in SCANNED


def _private_module_outside(module: str, package: str) -> bool:
    """``module`` has a private component whose parent package is not (an ancestor of) ``package``."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            parent = ".".join(parts[:i])
            if not (package == parent or package.startswith(parent + ".")):
                return True
    return False


def violations(source: str, path: Path, root: Path) -> list[str]:
    """Every cross-module use of a private name in one file, as ``path:line: what``."""
    tree = ast.parse(source)
    package = _package_of(path, root)
    rel = path.relative_to(root)
    found: list[str] = []
    modules: set[str] = set()  # local names bound to project modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_project(alias.name):
                    if _private_module_outside(alias.name, package):
                        found.append(f"{rel}:{node.lineno}: import {alias.name}")
                    modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            if not _is_project(module):
                continue
            if _private_module_outside(module, package):
                found.append(f"{rel}:{node.lineno}: from {module} import ...")
            for alias in node.names:
                if _private(alias.name) and module != package:
                    found.append(f"{rel}:{node.lineno}: from {module} import {alias.name}")
                modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_cross_module_private_names():
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            found += violations(path.read_text(), path, ROOT)
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_catches_each_kind(tmp_path):
    """The checker is not vacuous: each form it refuses is caught, and package-private modules pass."""
    pkg = tmp_path / "pipeline" / "train"
    pkg.mkdir(parents=True)
    cases = {
        "from pipeline.launch.submitit_lsf.lsf import _run_bsub": 1,
        "from hydra_plugins.pipeline_launchers import _payload": 1,
        "from hydra_plugins.pipeline_launchers._sweep import run_dirs": 1,
        "import hydra_plugins.pipeline_launchers._sweep": 1,
        "from pipeline import rundir\nrundir._private()": 1,
        "from . import _helpers": 0,  # the importer's own package
        "from ._helpers import thing": 0,
        "from hydra._internal.config_loader_impl import ConfigLoaderImpl": 0,  # third party
        "import os\nos._exit(0)": 0,
    }
    for source, expected in cases.items():
        got = violations(source, pkg / "loop.py", tmp_path)
        assert len(got) == expected, (source, got)
