"""The data package has one direction (issue 20, items 5 and 7): loading, cleaning and splitting at the
bottom, the report and the DVC stages on top; no module imports one above it, and token-length statistics
have one home."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

DATA = ROOT / "pipeline" / "data"
#: each module's layer: a module may import only modules of a lower layer
LAYERS = {"data_options": 0, "drops": 0, "tokens": 0, "data": 1,
          "batching": 2, "overlap": 2, "data_report": 2, "prepare": 2}


def data_imports(path: Path) -> set[str]:
    """The ``pipeline.data`` modules a file imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pipeline.data":
                found |= {a.name for a in node.names}
            elif node.module.startswith("pipeline.data."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("pipeline.data.")}
    return found


def test_every_data_module_has_a_layer():
    assert {p.stem for p in DATA.glob("*.py")} - {"__init__"} == set(LAYERS)


def test_data_modules_import_only_downwards():
    upward = [f"{p.stem} imports {m}" for p in DATA.glob("*.py") if p.stem in LAYERS
              for m in sorted(data_imports(p)) if LAYERS[m] >= LAYERS[p.stem] and m != p.stem]
    assert upward == []


def test_token_length_percentiles_have_one_home():
    hits = [p.name for p in (ROOT / "pipeline").rglob("*.py") if "np.percentile" in p.read_text()]
    assert hits == ["tokens.py"]
