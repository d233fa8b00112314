"""Every run-directory, results and study file name lives in ``pipeline/rundir.py`` (issue 20, item 4).

Outside that module, no string literal in ``pipeline/`` or ``hydra_plugins/`` may spell one of its file
names as a path: a literal (or a constant part of an f-string) without whitespace, one of whose ``/``-parts
is such a name (``"metrics.json"``, ``run_dir / "best.json"``, ``"checkpoints/last"``,
``f"{run}/progress.json"``), or that ends with the requeue marker's suffix. Prose (a message with spaces
that mentions ``metrics.json``) and docstrings are not paths and are not counted. The generic names
``results``, ``last`` and ``best`` are not counted on their own: they are ordinary words and dict keys (a
path with them, ``"checkpoints/best"``, is caught by its other part). A file that merely shares a name with
one of ours (the project's own ``configs/config.yaml``) says so on its line: ``# not a run-directory file``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline import rundir

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("pipeline", "hydra_plugins")
#: rundir constants that are words as well as names: counted only inside a path with another name
GENERIC = {rundir.RESULTS_DIR, rundir.LAST_CHECKPOINT, rundir.BEST_CHECKPOINT}
SUFFIXES = (rundir.REQUEUE_MARKER_SUFFIX,)
NOT_OURS = "# not a run-directory file"


def contract_names() -> set[str]:
    """The file and folder names that rundir.py defines (its upper-case string constants that name files)."""
    names = {value for key, value in vars(rundir).items()
             if key.isupper() and isinstance(value, str) and ("." in value or key.endswith("_DIR"))}
    return (names | GENERIC) - set(SUFFIXES)


def leaked(text: str, names: set[str]) -> bool:
    """``text`` spells a contract file name as a path (see the module docstring)."""
    if not text or any(c.isspace() for c in text):
        return False
    if text.endswith(SUFFIXES):
        return True
    return any(part in names and part not in GENERIC for part in text.split("/"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def literals_in(path: Path, names: set[str]) -> list[str]:
    """``file:line: 'literal'`` for each leaked name in one source file."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, str(path))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if leaked(node.value.strip(), names) and NOT_OURS not in lines[node.lineno - 1]:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def scan() -> list[str]:
    names = contract_names()
    files = sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if p != ROOT / "pipeline" / "rundir.py")
    return [hit for p in files for hit in literals_in(p, names)]


def test_the_names_are_the_contract_modules():
    names = contract_names()
    assert {"metrics.json", "metrics.jsonl", "best.json", "progress.json", "attempts.json", "checkpoints",
            "test_predictions.csv", "wandb_id.txt", ".hydra", "config.yaml", "sweep.json"} <= names
    assert leaked("metrics.json", names) and leaked("/best.json", names) and leaked("checkpoints/last", names)
    assert leaked(".submitit/1_2_requeue_requested.json", names)
    assert not leaked("no metrics.json was written", names)  # prose
    assert not leaked("best", names) and not leaked("results", names)  # words, dict keys
    assert not leaked("config.json", names)  # Hugging Face's file in a checkpoint, not ours


def test_no_run_directory_file_name_literal_outside_rundir():
    hits = scan()
    assert not hits, "use the constants and helpers of pipeline/rundir.py:\n" + "\n".join(hits)
