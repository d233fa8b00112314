"""The package's shape, checked so that it stays fixed (issue 20, "What it must show" 1):

- the import graph has one direction: contracts ← stages ← entry points (``tests/architecture.py`` says
  which module is which), no ``pipeline`` module imports ``hydra_plugins``, and no circles;
- no block of six or more lines of code repeated, with other names, in ``pipeline/`` and ``hydra_plugins/``.

Each check has an allow-list of what today's code still does, asserted exactly: fixing one entry makes the
test fail until the entry is deleted here, so the lists can only shrink.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.architecture import LAYER_NAMES, ROOT, cycles, import_graph, layer, repeated_blocks, upward_imports

#: imports that still go up a layer (importer, imported); issue 20 item 5 is removing them
KNOWN_UPWARD: set[tuple[str, str]] = set()

#: circles of modules that import each other (at module level or inside a function); issue 20 items 5, 6
KNOWN_CYCLES: list[list[str]] = []

#: pairs of places (file, function) sharing a block of six or more lines of the same shape
KNOWN_REPEATS: set[frozenset[tuple[str, str]]] = set()

#: pairs of files that the ``duplicates`` tool reports (where it is installed) inside the two packages
KNOWN_DUPLICATES_PAIRS: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read(graph):
    """The reader sees what it must: a module-level import, a function-level one, and a relative one."""
    assert "pipeline.rundir" in graph["pipeline.results.runs"]
    assert "pipeline.atomic" in graph["pipeline.rundir"]  # imported inside a function
    assert {layer("pipeline.errors"), layer("pipeline.launch.lsf"), layer("pipeline.cli.cli"),
            layer("hydra_plugins.pipeline_launchers.lsf_launcher")} == {0, 1, 2}
    assert all(name.startswith(("pipeline", "hydra_plugins")) for name in graph)


def test_upward_imports_and_circles_are_found(tmp_path: Path):
    """On a small tree: an import inside a function, a relative import, and a circle between two stages."""
    files = {
        "pipeline/__init__.py": "",
        "pipeline/errors.py": "def f():\n    from pipeline.cli import app\n",  # a contract importing the CLI
        "pipeline/cli/__init__.py": "from pipeline.cli.app import main\n",
        "pipeline/cli/app.py": "main = 1\n",
        "pipeline/launch/__init__.py": "",
        "pipeline/launch/a.py": "from . import b\nfrom ..train import c\n",
        "pipeline/launch/b.py": "import pipeline.launch.a\nimport hydra_plugins.x.y\n",
        "pipeline/train/__init__.py": "",
        "pipeline/train/c.py": "from pipeline.errors import f\n",
        "hydra_plugins/x/y.py": "from pipeline.launch import a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    # its own packages (pipeline, pipeline.launch) are not edges
    assert graph["pipeline.launch.a"] == {"pipeline.launch.b", "pipeline.train", "pipeline.train.c"}
    assert upward_imports(graph) == {("pipeline.errors", "pipeline.cli"), ("pipeline.errors", "pipeline.cli.app"),
                                     ("pipeline.launch.b", "hydra_plugins.x.y")}
    assert cycles(graph) == [["hydra_plugins.x.y", "pipeline.launch.a", "pipeline.launch.b"]]


def test_imports_go_one_way(graph):
    found = upward_imports(graph)
    new = {f"{a} ({LAYER_NAMES[layer(a)]}) imports {b} ({LAYER_NAMES[layer(b)]})" for a, b in found - KNOWN_UPWARD}
    assert not new, "imports against the direction contracts ← stages ← cli/hydra_plugins:\n" + "\n".join(sorted(new))
    assert found == KNOWN_UPWARD, f"fixed, delete from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}"


def test_no_pipeline_module_imports_hydra_plugins(graph):
    found = {(a, b) for a, targets in graph.items() for b in targets
             if a.startswith("pipeline") and b.startswith("hydra_plugins")}
    assert found <= KNOWN_UPWARD, sorted(found - KNOWN_UPWARD)


def test_no_import_circles(graph):
    found = cycles(graph)
    assert not [c for c in found if c not in KNOWN_CYCLES], f"new import circles: {found}"
    assert found == KNOWN_CYCLES, f"fixed, delete from KNOWN_CYCLES: {[c for c in KNOWN_CYCLES if c not in found]}"


def test_no_repeated_blocks():
    found = repeated_blocks()
    new = sorted(sorted(pair) for pair in found - KNOWN_REPEATS)
    assert not new, "blocks of six or more lines repeated (file, function): " + "; ".join(map(str, new))
    assert found == KNOWN_REPEATS, f"fixed, delete from KNOWN_REPEATS: {KNOWN_REPEATS - found}"


def test_repeated_blocks_are_found(tmp_path: Path):
    """The check finds a block copied with other names and constants, in a function and in a method."""
    loop = ("    {a} = {n}\n    for {x} in {xs}:\n        if {x}.done:\n            {out}.append({x}.result())\n"
            "        else:\n            {out}.append({n})\n    {t} = len({out})\n    return {out}\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "hydra_plugins" / "p").mkdir(parents=True)
    (tmp_path / "pipeline" / "a.py").write_text(
        "def f(jobs, out):\n" + loop.format(a="x", n=1, x="job", xs="jobs", out="out", t="total"))
    (tmp_path / "hydra_plugins" / "p" / "b.py").write_text(
        "class L:\n    def g(self, arrays, res):\n" + re.sub("(?m)^", "    ", loop.format(
            a="y", n=2, x="a", xs="arrays", out="res", t="n")))
    assert repeated_blocks(tmp_path) == {frozenset({("pipeline/a.py", "f"), ("hydra_plugins/p/b.py", "L.g")})}


def test_the_duplicates_tool_agrees():
    """Where the ``duplicates`` tool is installed (this project's machines; not a pip package), its pairs
    inside the two packages are the known ones."""
    if shutil.which("duplicates") is None:
        pytest.skip("the duplicates tool is not installed here; test_no_repeated_blocks covers the same ground")
    out = subprocess.run(["duplicates", "--repo", str(ROOT), "--most", "200", "--seconds", "120"],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    assert "incomplete:" not in out, out
    pairs = set()
    for row in re.finditer(r"^D\d+ (\S+):\d+-\d+ ~ (\S+):\d+-\d+", out, re.M):
        a, b = row.groups()
        if a.startswith(("pipeline/", "hydra_plugins/")) and b.startswith(("pipeline/", "hydra_plugins/")):
            pairs.add((a, b))
    assert pairs == KNOWN_DUPLICATES_PAIRS, out
