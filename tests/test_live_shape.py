"""The session engine's shape (issue 15): small functions in ``mailstudy/live``, no module reaching into another's
private names, one reader of FETCH responses, client profiles as frozen data."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailstudy"
LIVE = PACKAGE / "live"
MAX_FUNCTION_LINES = 60


def _trees(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def long_functions(folder: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, tree in _trees(folder) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def private_imports(folder: Path) -> list[str]:
    """``from mailstudy.x import _name`` (or ``from .x import _name``): a private name taken from another module."""
    return [f"{path.name}:{node.lineno} {'.' * node.level}{node.module or ''}.{a.name}"
            for path, tree in _trees(folder) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mailstudy"))
            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]


def definitions(folder: Path, name: str) -> list[str]:
    """Where a module of ``folder`` defines ``name`` at its top: a class, a function or an assigned alias."""
    out = []
    for path, tree in _trees(folder):
        for node in tree.body:
            defined = [node.name] if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else \
                [t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
            if name in defined:
                out.append(f"{path.relative_to(folder)}:{node.lineno}")
    return out


#: Names issue 15 found defined twice in the package (two ``Account`` classes, two ``get_profile``): one home each.
ONCE = ("Account", "get_profile", "get_client")


def test_the_names_the_issue_found_twice_are_defined_once():
    for name in ONCE:
        assert len(definitions(PACKAGE, name)) == 1, (name, definitions(PACKAGE, name))


def test_no_function_in_live_is_longer_than_60_lines():
    assert not long_functions(LIVE), long_functions(LIVE)


def test_no_module_in_the_package_imports_a_private_name():
    """Issue 15: a name another module needs is public (one home, a docstring line), not reached into."""
    assert not private_imports(PACKAGE), private_imports(PACKAGE)


def test_the_checks_see_what_they_look_for(tmp_path):
    (tmp_path / "m.py").write_text("from mailstudy.live.engine import _sha\n\ndef f():\n" + "    x = 1\n" * 61)
    (tmp_path / "n.py").write_text("from .engine import _sha, fetches\nfrom mailstudy.wire import Chunk\n")
    assert private_imports(tmp_path) == ["m.py:1 mailstudy.live.engine._sha", "n.py:1 .engine._sha"]
    assert long_functions(tmp_path) == ["m.py:3 f (62 lines)"]
    (tmp_path / "o.py").write_text("class Account:\n    pass\n\n\nget_profile = len\nx: int = 1\n")
    assert definitions(tmp_path, "Account") == ["o.py:1"] and definitions(tmp_path, "get_profile") == ["o.py:5"]
    assert definitions(tmp_path, "x") == ["o.py:6"] and definitions(tmp_path, "f") == ["m.py:3"]


def test_imap_fetch_data_is_read_only_by_the_protocols_reader():
    """live/ has no FETCH reader of its own: no regex over FETCH text (``UID (\\d+)``, ``FLAGS (``,
    ``RFC822.SIZE``) outside the one adapter (engine.fetches) that hands imaplib's data to protocol/imap."""
    for path in LIVE.glob("*.py"):
        text = path.read_text()
        assert 'rb"UID (' not in text and "rb\"FLAGS \\(" not in text and 'RFC822\\.SIZE (' not in text, path.name


def test_fetches_puts_imaplib_data_back_together_for_the_protocol_reader():
    from mailstudy.live.engine import fetches, is_seen, message_data

    data = [(b"1 (UID 4 RFC822.SIZE 5 FLAGS (\\Seen) BODY[] {5}", b"hello"), b")",
            (b"2 (BODY[] {3}", b"abc"), b" UID 9)", b"3 (UID 11 FLAGS ())"]
    got = fetches(data)
    assert [(f.seq, f.uid, message_data(f), is_seen(f)) for f in got] == [
        (1, 4, b"hello", True), (2, 9, b"abc", False), (3, 11, None, False)]
    assert got[0].size == 5


def test_every_client_profile_is_one_frozen_value_of_two_classes():
    from mailstudy.live.client_profiles import PROFILES, ImapProfile, Pop3Profile

    assert {type(p) for p in PROFILES.values()} == {ImapProfile, Pop3Profile}
    for p in PROFILES.values():
        assert dataclasses.fields(p) and p.__dataclass_params__.frozen
    assert PROFILES["thunderbird"] != PROFILES["thunderbird-online"]  # they differ in a field, not a subclass
    assert PROFILES["thunderbird"].bodies == "autosync" and PROFILES["thunderbird-online"].bodies == "on-open"
