"""The package's layers, as docs/design.md draws them: a lower layer never imports a higher one, and no module
imports itself back through others (no import cycles), lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailstudy"

#: Rank of each part of the package; the longest matching prefix wins. A module may import only modules of
#: the same or a lower rank. 0 pure, 1 I/O, 2 behaviour, 3 orchestration, 4 faces.
RANKS = {
    "mailstudy": 0,
    "mailstudy.wire": 0,
    "mailstudy.corpus": 0,
    "mailstudy.corpus.files": 1,
    "mailstudy.protocol": 0,
    "mailstudy.link.profiles": 0,
    "mailstudy.link.model": 0,
    "mailstudy.link.schedule": 0,
    "mailstudy.energy": 0,
    "mailstudy.energy.files": 1,
    "mailstudy.energy.pcap": 2,
    "mailstudy.energy.day": 3,
    "mailstudy.link.traces": 0,  # reads only the trace files a profile names, as a parser reads what it is handed
    "mailstudy.outputs": 1,
    "mailstudy.processes": 1,
    "mailstudy.caches": 1,
    "mailstudy.net": 1,
    "mailstudy.servers": 1,
    "mailstudy.link": 1,
    "mailstudy.capture": 1,
    "mailstudy.live.trace": 1,
    "mailstudy.live": 2,
    "mailstudy.offline": 2,
    "mailstudy.study": 3,
    "mailstudy.cli": 4,
    "mailstudy.faces": 4,
}
LAYER_NAMES = ("pure", "I/O", "behaviour", "orchestration", "faces")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _rank(module: str) -> int:
    best = max((p for p in RANKS if module == p or module.startswith(p + ".")), key=len)
    return RANKS[best]


def _imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """Every mailstudy module ``path`` imports, at the top or inside a function (``from X import name`` counts
    as importing X.name when that is a module, else X)."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mailstudy"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            if not base.startswith("mailstudy"):
                continue
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(p, m, known) for m, p in known.items()}


def test_no_lower_layer_imports_a_higher_one():
    wrong = [f"{m} ({LAYER_NAMES[_rank(m)]}) imports {d} ({LAYER_NAMES[_rank(d)]})"
             for m, deps in sorted(_graph().items()) for d in sorted(deps)
             if _rank(d) > _rank(m) and not d.startswith(m + ".")]  # a package re-exporting its own parts
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a package's imports of its
    own submodules (``__init__`` re-exporting is not a cycle of logic)."""
    def edges(m):
        return {d for d in graph[m] if not d.startswith(m + ".")}

    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_module_is_ranked_and_the_graph_is_not_empty():
    graph = _graph()
    assert len(graph) > 40, "the package should have been found"
    assert sum(len(d) for d in graph.values()) > 50
    # a known edge must be seen, or the scanner is blind
    assert any(d.startswith("mailstudy.protocol") for d in graph["mailstudy.live.engine"])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rank check fails on a planted upward import (pure importing faces)."""
    known = {"mailstudy.protocol.x": tmp_path / "x.py", "mailstudy.faces.plots": tmp_path / "p.py"}
    (tmp_path / "x.py").write_text("def f():\n    from mailstudy.faces import plots\n")
    deps = _imports(tmp_path / "x.py", "mailstudy.protocol.x", known)
    assert deps == {"mailstudy.faces.plots"}
    assert _rank("mailstudy.faces.plots") > _rank("mailstudy.protocol.x")
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
