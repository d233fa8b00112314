"""The package's import graph and its repeated blocks, read from the source with ``ast`` (nothing is
imported): what ``tests/test_architecture.py`` checks.

Layers, lowest first: the contracts (``pipeline/{rundir,config,errors,atomic,faults}.py`` and the package
itself), the stages (``pipeline/{data,models,train,launch,search,results,serve}``), then the entry points
(``pipeline/cli`` and ``hydra_plugins``). An import goes down or sideways, never up.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "hydra_plugins")
CONTRACTS = {"pipeline", "pipeline.rundir", "pipeline.config", "pipeline.errors", "pipeline.atomic",
             "pipeline.faults"}  # faults: the fault-injection points that atomic writes pass through
STAGES = ("data", "models", "train", "launch", "search", "results", "serve")
LAYER_NAMES = ("contract", "stage", "entry point")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the two packages by dotted name (``pipeline.launch.lsf``; a package by its name)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def layer(module: str) -> int:
    """0 contract, 1 stage, 2 entry point."""
    parts = module.split(".")
    if module in CONTRACTS:
        return 0
    if parts[0] == "pipeline" and len(parts) > 1 and parts[1] in STAGES:
        return 1
    return 2  # pipeline.cli.*, hydra_plugins.*, and a new top-level pipeline module until it is placed


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names one import statement names: ``from a.b import c`` gives ``a.b.c`` (a module, or a
    name in ``a.b``; :func:`resolve` decides)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the importing module's package, up level-1 more
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None: outside the two packages)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module → the modules of the two packages it imports, at module level or inside a function."""
    modules = module_files(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _imported(node, module, is_package):
                    target = resolve(name, modules)
                    if target and target != module and not module.startswith(f"{target}."):
                        edges.add(target)
        graph[module] = edges
    return graph


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) where the imported module sits in a higher layer."""
    return {(a, b) for a, targets in graph.items() for b in targets if layer(b) > layer(a)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected component of more than one module, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# ------------------------------------------------------------------------------------------ repeated blocks

MIN_LINES = 6  # statements of at least this many source lines, repeated, make a pair


class _Shape(ast.NodeTransformer):
    """A statement's shape: names, attributes, arguments and constants replaced by placeholders, so that
    two blocks that differ only in what they call things compare equal."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg, node.annotation = "_", None
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        node.attr = "_"
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.name, node.returns = "_", None
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)
        node.name = "_"
        return node


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` without docstrings (changed in place): they are prose, not code."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            node.body = body[1:] or [ast.Pass()]
    return tree


class _Statements:
    """Each statement's lines of code (as ``ast.unparse`` writes it) and shape, computed once."""

    def __init__(self) -> None:
        self._text: dict[int, str] = {}
        self._shape: dict[int, str] = {}

    def text(self, stmt: ast.stmt) -> str:
        if id(stmt) not in self._text:
            self._text[id(stmt)] = ast.unparse(stmt)
        return self._text[id(stmt)]

    def lines(self, stmt: ast.stmt) -> int:
        return len(self.text(stmt).splitlines())

    def shape(self, stmt: ast.stmt) -> str:
        if id(stmt) not in self._shape:
            self._shape[id(stmt)] = ast.dump(_Shape().visit(ast.parse(self.text(stmt)).body[0]))
        return self._shape[id(stmt)]


def _windows(body: list[ast.stmt], where: str, in_function: bool,
             st: _Statements) -> Iterator[tuple[list[ast.stmt], str]]:
    """The blocks to compare: every function or method as a whole, and inside functions every run of
    consecutive statements of at least MIN_LINES lines of code that is the shortest such run from its
    first statement. Runs of module- or class-level statements (constants, small classes) are left out:
    they are declarations, not logic."""
    body = [s for s in body if not _is_docstring(s) and not isinstance(s, (ast.Import, ast.ImportFrom))]
    lines = [st.lines(s) for s in body] if in_function else []
    for i in range(len(lines)):
        total = 0
        for j in range(i, len(body)):
            total += lines[j]
            if total >= MIN_LINES:
                yield body[i: j + 1], where
                break
    for stmt in body:
        is_def = isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        name = f"{where}.{stmt.name}" if is_def or isinstance(stmt, ast.ClassDef) else where
        if is_def and not in_function and st.lines(stmt) >= MIN_LINES:
            yield [stmt], name
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _windows(inner, name, in_function or is_def, st)
        for handler in getattr(stmt, "handlers", []):
            yield from _windows(handler.body, name, in_function, st)


def repeated_blocks(root: Path = ROOT) -> set[frozenset[tuple[str, str]]]:
    """Pairs of places (file relative to ``root``, enclosing function or class) that hold a block of at least
    MIN_LINES lines of the same shape; a place that repeats itself (within one function) is not counted."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in module_files(root).values():
        rel = str(path.relative_to(root))
        tree = _strip_docstrings(ast.parse(path.read_text(), rel))
        st = _Statements()
        for stmts, where in _windows(tree.body, "<module>", False, st):
            shape = hashlib.sha1("\n".join(st.shape(s) for s in stmts).encode()).hexdigest()
            seen.setdefault(shape, set()).add((rel, where.removeprefix("<module>.")))
    pairs = set()
    for places in map(sorted, seen.values()):
        pairs.update(frozenset((a, b)) for i, a in enumerate(places) for b in places[i + 1:])
    return pairs
