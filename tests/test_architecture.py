"""The library's shape stays as docs/architecture.md says (issue 9): every module listed, public
modules declare ``__all__``, no module imports another's private names, files and functions stay
short enough to read at once (or say why next to them)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dfig import paths

LIB = paths.root() / "lib" / "dfig"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 60
REASON = (
    "# long:"  # a function longer than MAX_FUNCTION_LINES (docstring not counted) says why, above its def
)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(LIB.rglob("*.py")):
        rel = p.relative_to(LIB.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), p))
    return out


def docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines taken by the function's docstring (not counted against its length)."""
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.end_lineno - first.lineno + 1
    return 0


def test_architecture_doc_lists_every_module() -> None:
    doc = (paths.root() / "docs" / "architecture.md").read_text()
    missing = [name for name, _ in _modules() if name != "dfig" and f"`{name}`" not in doc]
    assert not missing, f"docs/architecture.md does not list: {missing}"


def test_architecture_doc_names_no_module_that_is_gone() -> None:
    doc = (paths.root() / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^\| `(dfig[\w.]*)`", doc, flags=re.M))
    known = {name for name, _ in _modules()}
    assert listed, "the module table in docs/architecture.md is empty"
    assert listed <= known, f"listed but not in lib/: {sorted(listed - known)}"


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[n for n, _ in _modules()])
def test_module_shape(name: str, path: Path) -> None:
    src = path.read_text()
    tree = ast.parse(src)
    lines = src.splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{name}: {len(lines)} lines (split it)"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dfig"):
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            assert not private, f"{name} imports private names {private} from {node.module}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1 - docstring_lines(node)
            if n > MAX_FUNCTION_LINES:
                near = " ".join(lines[max(0, node.lineno - 3) : node.lineno])
                assert REASON in near, f"{name}.{node.name}: {n} lines and no '{REASON} ...' reason"
    is_shim = path.parent == LIB and len(lines) < 15 and "dfig.stages" in src
    has_public = any(
        isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_") for n in tree.body
    )
    if has_public and not is_shim:
        assert "__all__" in src, f"{name} has public names but no __all__"


def _imports(path: Path) -> set[str]:
    """The ``dfig`` modules a file imports (at any depth: lazy imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dfig"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("dfig"))
    return out


@pytest.mark.parametrize(("layer", "forbidden"), [("core", ("stages", "report")), ("stages", ("report",))])
def test_layers_import_only_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        str(p.relative_to(LIB)): sorted(
            m for m in _imports(p) if m.split(".")[1:2] and m.split(".")[1] in forbidden
        )
        for p in (LIB / layer).rglob("*.py")
    }
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"dfig.{layer} must not import {forbidden}: {bad}"


#: the layers of docs/architecture.md's module map, lowest first: a module imports its own layer or lower
LAYER_ORDER = (
    "package",
    "infrastructure",
    "core",
    "data",
    "session",
    "stages",
    "report",
    "pipeline",
    "command",
)
#: stages that compose others (through the package's public API only); every other stage imports none
STAGE_COMPOSES = {
    "predict": {"segment", "lnp", "train"},
    "robustness": {"predict", "train"},
    "trainrun": {"train"},
}


def _layers() -> dict[str, str]:
    doc = (paths.root() / "docs" / "architecture.md").read_text()
    return dict(re.findall(r"^\| `(dfig[\w.]*)` \| (\w+) \|", doc, flags=re.M))


def _graph() -> dict[str, set[str]]:
    """Module -> the ``dfig`` modules it imports (``from dfig import io`` counts as ``dfig.io``)."""
    names = {name for name, _ in _modules()}

    def owner(m: str) -> str:
        while m not in names and "." in m:
            m = m.rpartition(".")[0]
        return m

    out = {}
    for name, path in _modules():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dfig"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in names else owner(node.module))
            elif isinstance(node, ast.Import):
                deps.update(owner(a.name) for a in node.names if a.name.startswith("dfig"))
        out[name] = deps - {name}
    return out


def test_every_module_sits_in_a_known_layer() -> None:
    layers = _layers()
    unknown = {m: layer for m, layer in layers.items() if layer not in LAYER_ORDER}
    assert not unknown, f"layers not in {LAYER_ORDER}: {unknown}"


def test_no_import_from_a_lower_layer_to_a_higher_one() -> None:
    layers, rank = _layers(), {layer: i for i, layer in enumerate(LAYER_ORDER)}
    bad = [
        f"{m} ({layers[m]}) -> {d} ({layers[d]})"
        for m, deps in _graph().items()
        for d in deps
        if m in layers and d in layers and rank[layers[d]] > rank[layers[m]]
    ]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    """No circle of imports (a package's ``__init__`` importing its submodules counts as an import)."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*stack[stack.index(d) :], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "stages" else None


def test_no_stage_imports_another_stage_except_the_composers() -> None:
    bad = []
    for m, deps in _graph().items():
        for d in deps:
            s, t = _stage(m), _stage(d)
            if not s or not t or s == t:
                continue
            if t not in STAGE_COMPOSES.get(s, ()) or d != f"dfig.stages.{t}":
                bad.append(f"{m} -> {d}")
    assert not bad, "a stage imports another stage:\n" + "\n".join(sorted(bad))
