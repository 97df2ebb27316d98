"""The explorer as a page with no install: a folder of files that opens in a browser from disk (``file://``).

Why: a teacher wants the explorer on a course page, and a student has no Python. The page runs mailstudy's own
pure-Python reader, reassembly and parsers in Pyodide (CPython compiled to WebAssembly, the ``pyodide`` npm
package), so a capture is read with the same code as ``mailstudy analyze``; the views are the explorer's
(:mod:`mailstudy.faces.explorer_views`, :func:`mailstudy.faces.ladder.flights` and its labels), returned as HTML
and JSON, and the page draws the ladder as SVG.

What it is not, and why (measured here): JupyterLite's and Voici's Python kernel load Pyodide and its packages
(numpy, pandas, matplotlib, ipywidgets' dependencies) from Pyodide's CDN; the npm ``pyodide`` package holds only
the core (14 files: the interpreter, its standard library and a lock file whose wheels point at that CDN), and
PyPI has no wasm wheels of numpy (``pip download numpy --platform pyemscripten_2026_0_wasm32`` finds none). So
the page uses no widgets, pandas or matplotlib: the table is HTML, the ladder SVG, and TLS captures stay closed
(``cryptography`` is not in the core). A browser refuses ``fetch`` and module imports from ``file://`` pages
(origin "null"), so the build puts the interpreter's files into ordinary ``<script>`` files (base64) and the page
hands them to Pyodide itself (a ``fetch`` of those names answered from memory; the module from a ``blob:`` URL).

Two halves: :func:`page_json` runs inside the page; :func:`build_site` (``make explorer-site``) writes the folder.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import tarfile
from pathlib import Path

__all__ = ["page_json", "build_site", "PYODIDE_FILES", "main"]

#: What the page needs from the npm ``pyodide`` package (the rest: maps, types, consoles).
PYODIDE_FILES = ("pyodide.js", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
SITE_FILES = ("index.html", "site.js")  # in mailstudy/faces/site/
MAX_EXCHANGE_TEXTS = 400  # exchanges whose text the page carries (each a few hundred bytes)


# ---- inside the page -----------------------------------------------------------------------------------------
def _flights_json(session) -> list[dict]:
    from mailstudy.faces.ladder import flights, label
    from mailstudy.wire import DOWN

    fl = flights(session)
    greeting = fl[0] if fl and fl[0].direction == DOWN else None
    out = []
    for f in fl:
        text, colour = label(f, greeting=f is greeting)
        out.append({"up": f.direction != DOWN, "t_ms": round(f.t_start * 1e3, 3), "bytes": f.nbytes,
                    "text": text, "colour": colour})
    return out


def page_json(name: str, data: bytes, folder: str = "/tmp") -> str:
    """Analyze the capture ``data`` (called ``name``) and return what the page shows, as JSON: ``error`` (one
    line) or ``sessions`` (label, table and warnings as HTML, exchange texts, flights) and ``busiest``."""
    from mailstudy.faces import explorer_views as views
    from mailstudy.offline.analyze import analyze_pcap

    path = Path(folder) / (Path(name).name or "upload.pcap")
    path.write_bytes(bytes(data))
    try:
        analysis = analyze_pcap(path)
    except Exception as exc:  # noqa: BLE001 - the page shows one line, never a traceback
        text = " ".join(str(exc).split()).replace(str(path), name)
        if "magic 0x" in text:
            text = f"{name}: not a pcap or pcapng file (what tcpdump and Wireshark save)"
        return json.dumps({"error": text})
    finally:
        path.unlink(missing_ok=True)
    if not analysis.sessions:
        why = f"; {analysis.warnings[0]}" if analysis.warnings else ""
        return json.dumps({"error": f"{name}: no IMAP or POP3 session found ({analysis.connections} TCP "
                                    f"connections){why}"})
    sessions = []
    for s in analysis.sessions:
        texts = {str(e.index): views.exchange_html(s, e.index) for e in s.exchanges[:MAX_EXCHANGE_TEXTS]}
        sessions.append({"label": views.session_label(s, analysis), "table": views.exchanges_html(s, analysis),
                         "warnings": views.warnings_html(s, analysis), "choices": views.exchange_choices(s),
                         "texts": texts, "flights": _flights_json(s),
                         "client": s.metrics["client"], "server": s.metrics["server"]})
    return json.dumps({"name": html.escape(name), "packets": analysis.stats.packets_total, "sessions": sessions,
                       "busiest": views.busiest_session(analysis)})


# ---- building the folder -------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pyodide_files(tgz: Path) -> dict[str, bytes]:
    with tarfile.open(tgz) as tar:
        found = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        missing = [n for n in PYODIDE_FILES if n not in found]
        if missing:
            raise ValueError(f"{tgz}: not an npm pyodide package (missing {', '.join(missing)})")
        return {n: tar.extractfile(found[n]).read() for n in PYODIDE_FILES}


def _modules(package: Path) -> dict[str, str]:
    """The package's Python sources by path (``mailstudy/net/pcap.py``); the page imports only what it uses."""
    return {str(p.relative_to(package.parent)): p.read_text() for p in sorted(package.rglob("*.py"))}


def build_site(out: str | os.PathLike, pyodide_tgz: str | os.PathLike,
               captures: str | os.PathLike | None = None) -> Path:
    """Write the static explorer into ``out``: ``index.html``, ``site.js`` and three data scripts (the
    interpreter, mailstudy's sources, the example captures; TLS examples left out). Returns ``out``."""
    from mailstudy.outputs import project_root, write_atomically

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _pyodide_files(Path(pyodide_tgz))
    here = Path(__file__).resolve().parent
    runtime = {"files": {n: _b64(files[n]) for n in ("pyodide-lock.json", "python_stdlib.zip",
                                                     "pyodide.asm.wasm")},
               "asm": files["pyodide.asm.mjs"].decode()}
    write_atomically(out / "pyodide.js", files["pyodide.js"])
    write_atomically(out / "runtime.js", "window.MS_RUNTIME = " + json.dumps(runtime) + ";\n")
    write_atomically(out / "modules.js", "window.MS_MODULES = " + json.dumps(_modules(here.parent)) + ";\n")
    folder = Path(captures) if captures else project_root() / "captures"
    examples = {p.stem: _b64(p.read_bytes()) for p in sorted(folder.glob("*.pcap"))
                if not p.with_suffix(".keylog").exists()}
    write_atomically(out / "captures.js", "window.MS_CAPTURES = " + json.dumps(examples) + ";\n")
    for name in SITE_FILES:
        write_atomically(out / name, (here / "site" / name).read_bytes())
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mailstudy.faces.static_site",
                                description="Write the explorer as a folder of files that opens from disk.")
    p.add_argument("out", help="the folder to write (e.g. build/explorer-site)")
    p.add_argument("--pyodide", required=True, metavar="TGZ", help="the npm pyodide package (npm pack pyodide)")
    p.add_argument("--captures", default=None, help="the example captures (captures/)")
    args = p.parse_args(argv)
    try:
        where = build_site(args.out, args.pyodide, args.captures)
    except (OSError, ValueError, tarfile.TarError) as exc:
        print(f"static_site: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"open {where / 'index.html'} in a browser (no server needed)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
