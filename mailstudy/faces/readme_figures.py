"""The figures README.md quotes, computed from the study's output tables, so the README cannot drift from them.

Why a module of its own: a number typed into the README by hand goes stale at the next run (the README once said
"within 6.0 %" while the study's own ``model_vs_measured.csv`` had a LAN figure 33.3 % off). Here each quoted
figure has a name, the output table and column it comes from, and one function that computes it. README.md marks
each figure as ``<!-- study:NAME -->value<!-- /study -->``; :func:`fill` replaces every marked value with what
the tables give (an interval over seeds is appended when the table carries ``X_lo``/``X_hi``: see
:mod:`mailstudy.faces.chart_kit`).

The tables the README quotes are kept in ``docs/results/`` (the quoted columns only: a few KB), written by
:func:`snapshot` when ``mailstudy study`` finishes a full run, so the README's figures can be recomputed from a
clone and ``tests/test_readme_figures.py`` checks that README.md is exactly what :func:`fill` gives from them.

``python -m mailstudy.faces.readme_figures`` refills README.md from ``docs/results/``; ``--from DIR`` takes a
fresh snapshot of the tables in DIR first (``data/results`` by default); ``--check`` only says whether the README
is up to date (exit 1 when not).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mailstudy.errors import MailstudyError

MARKER = re.compile(r"<!-- study:(?P<name>[a-z0-9_.-]+) -->(?P<value>.*?)<!-- /study -->", re.S)


class FigureError(MailstudyError, ValueError):
    """A marked figure whose table or column is missing from the outputs (the message names both)."""


@dataclass(frozen=True)
class Figure:
    """One quoted figure: ``compute(tables)`` gives its text from the output ``table``'s ``column``."""

    table: str  # the output CSV's name under data/results (and docs/results)
    column: str  # the column it is computed from
    what: str  # one line: what the figure is
    compute: Callable


def _pct(v: float, digits: int = 1) -> str:
    return f"{100 * v:.{digits}f} %"


def _with_interval(df, column: str, value: float, fmt: Callable[[float], str]) -> str:
    """``fmt(value)``, plus " (95 % interval LO to HI, N seeds)" when ``df`` carries the interval of
    ``column``."""
    if f"{column}_lo" not in df.columns or f"{column}_hi" not in df.columns or df.empty:
        return fmt(value)
    lo, hi = float(df[f"{column}_lo"].median()), float(df[f"{column}_hi"].median())
    seeds = f", {int(df['seeds'].min())} seeds" if "seeds" in df.columns else ""
    return f"{fmt(value)} (95 % interval {fmt(lo)} to {fmt(hi)}{seeds})"


def _list_share(protocol: str):
    """Header-first's bytes down at read fraction 0 as a share of download-all's, at the largest mailbox, on the
    embedded server (the one every run has)."""
    def compute(t):
        df = t["traffic_volume"]
        df = df[(df["server"] == _volume_server(df)) & (df["messages"] == df["messages"].max())
                & (df["protocol"] == protocol)]
        hf = df[df["strategy"] == "header-first"]["bytes_down"].median()
        whole = df[df["strategy"] == "download-all"]["bytes_down"].median()
        return _pct(hf / whole, 2)
    return compute


def _volume_server(df) -> str:
    return "embedded" if "embedded" in set(df["server"]) else sorted(df["server"])[0]


def _read_breakeven(protocol: str):
    def compute(t):
        from mailstudy.study.volume import measured_breakeven

        v = measured_breakeven(t["bytes_vs_read_fraction"]).get(protocol)
        return "never" if v is None else f"{v:.2f}"
    return compute


def _waiting_breakeven(profile: str, protocol: str):
    def compute(t):
        df = t["breakeven_per_profile"]
        df = df[(df["profile"] == profile) & (df["protocol"] == protocol)]
        if df.empty:
            raise FigureError(f"breakeven_per_profile.csv has no row for {profile} {protocol}")
        v = float(df["waiting_r"].median())
        if math.isnan(v) or v > 1:
            return "never"
        return "always" if v < 0 else _with_interval(df, "waiting_r", v, lambda x: f"{x:.2f}")
    return compute


def _model_worst(t) -> str:
    df = t["model_vs_measured"]
    worst = df.loc[df["error"].abs().idxmax()]
    name = {"time_to_list_s": "time to list", "duration_s": "whole session"}.get(worst["time"], worst["time"])
    return f"{100 * worst['error']:+.1f} % ({worst['profile']}, {worst['label']}, {name})"


def _model_within(t) -> str:
    df = t["model_vs_measured"]
    return f"{int((df['error'].abs() <= 0.10).sum())} of {len(df)}"


def _fleet_growth(client: str):
    """Bytes down per day at the most devices over one device, for ``client`` on the first server."""
    def compute(t):
        df = t["devices_fleet"]
        df = df[(df["clients"] == client) & (df["server"] == _volume_server(df))]
        if df.empty:
            raise FigureError(f"devices_fleet.csv has no row for {client}")
        one = df[df["devices"] == df["devices"].min()]["bytes_down_per_day"].median()
        most = df[df["devices"] == df["devices"].max()]["bytes_down_per_day"].median()
        return f"{most / one:.2f}x"
    return compute


def _fleet_devices(t) -> str:
    return str(int(t["devices_fleet"]["devices"].max()))


def _claims(verdict: str):
    def compute(t):
        df = t["article_claims"]
        return str(int((df["verdict"] == verdict).sum()))
    return compute


def _volume_messages(t) -> str:
    return str(int(t["traffic_volume"]["messages"].max()))


#: Every figure README.md may quote, by marker name.
FIGURES: dict[str, Figure] = {
    "run_mode": Figure("run", "mode", "the run the tables come from (full or quick)",
                       lambda t: str(t["run"]["mode"].iloc[0])),
    "volume_messages": Figure("traffic_volume", "messages", "the largest mailbox of notebook 01", _volume_messages),
    "list_share_imap": Figure("traffic_volume", "bytes_down", "IMAP header-first's bytes down (read fraction 0) "
                              "as a share of download-all's, largest mailbox", _list_share("imap")),
    "list_share_pop3": Figure("traffic_volume", "bytes_down", "POP3 header-first's bytes down (read fraction 0) "
                              "as a share of download-all's, largest mailbox", _list_share("pop3")),
    "read_breakeven_imap": Figure("bytes_vs_read_fraction", "bytes_down", "read fraction where IMAP header-first's "
                                  "bytes down reach download-all's (measured)", _read_breakeven("imap")),
    "read_breakeven_pop3": Figure("bytes_vs_read_fraction", "bytes_down", "read fraction where POP3 header-first's "
                                  "bytes down reach download-all's (measured)",
                                  _read_breakeven("pop3")),
    "waiting_breakeven_4g_imap": Figure("breakeven_per_profile", "waiting_r", "IMAP's total-waiting break-even "
                                        "read fraction on 4g (model)", _waiting_breakeven("4g", "imap")),
    "waiting_breakeven_4g_pop3": Figure("breakeven_per_profile", "waiting_r", "POP3's total-waiting break-even "
                                        "read fraction on 4g (model)",
                                        _waiting_breakeven("4g", "pop3")),
    "model_worst": Figure("model_vs_measured", "error", "the model's worst relative error against the link",
                          _model_worst),
    "model_within_10": Figure("model_vs_measured", "error", "figures within 10 % of the link", _model_within),
    "fleet_devices": Figure("devices_fleet", "devices", "the largest fleet of notebook 04", _fleet_devices),
    "fleet_growth_thunderbird-pop3": Figure("devices_fleet", "bytes_down_per_day", "bytes per day, most devices "
                                            "over one, POP3 keep (thunderbird-pop3)", _fleet_growth("thunderbird-pop3")),
    "fleet_growth_thunderbird": Figure("devices_fleet", "bytes_down_per_day", "bytes per day, most devices over "
                                       "one, Thunderbird (IMAP, offline sync)", _fleet_growth("thunderbird")),
    "fleet_growth_pop3-delete": Figure("devices_fleet", "bytes_down_per_day", "bytes per day, most devices over "
                                       "one, POP3 delete",
                                       _fleet_growth("pop3-delete")),
    "claims_supported": Figure("article_claims", "verdict", "ledger rows supported", _claims("supported")),
    "claims_contradicted": Figure("article_claims", "verdict", "ledger rows contradicted", _claims("contradicted")),
    "claims_holds_only_when": Figure("article_claims", "verdict", "ledger rows holds-only-when",
                                     _claims("holds-only-when")),
    "claims_not_a_protocol_property": Figure("article_claims", "verdict", "ledger rows not-a-protocol-property",
                                             _claims("not-a-protocol-property")),
    "claims_not_measurable": Figure("article_claims", "verdict", "ledger rows not-measurable-here",
                                    _claims("not-measurable-here")),
}

#: The columns of each table the snapshot keeps (what the figures read, and the keys that select rows).
KEEP = {
    "traffic_volume": ["server", "protocol", "strategy", "messages", "bytes_down"],
    "bytes_vs_read_fraction": ["protocol", "strategy", "read_fraction", "bytes_down"],
    "breakeven_per_profile": ["profile", "protocol", "waiting_r"],
    "model_vs_measured": ["profile", "label", "time", "measured", "model", "error"],
    "devices_fleet": ["server", "clients", "devices", "bytes_down_per_day"],
    "article_claims": ["key", "server", "verdict"],
}


def load_tables(folder: Path, names=None) -> dict:
    """The output tables under ``folder`` that exist (name -> DataFrame)."""
    import pandas as pd

    out = {}
    for name in names or KEEP:
        path = Path(folder) / f"{name}.csv"
        if path.exists():
            out[name] = pd.read_csv(path)
    run = Path(folder) / "run.json"
    if run.exists():
        out["run"] = pd.DataFrame([json.loads(run.read_text())])
    return out


def value(name: str, tables: dict) -> str:
    """The text of figure ``name`` from ``tables``; :class:`FigureError` naming the table when it is missing."""
    if name not in FIGURES:
        raise FigureError(f"README marks an unknown figure {name!r}; known: {', '.join(FIGURES)}")
    fig = FIGURES[name]
    if fig.table not in tables:
        file = "run.json" if fig.table == "run" else f"{fig.table}.csv"
        raise FigureError(f"figure {name!r} needs {file}, which the outputs do not have")
    if fig.column not in tables[fig.table].columns:
        raise FigureError(f"figure {name!r} needs column {fig.column!r} of {fig.table}.csv")
    return fig.compute(tables)


def fill(text: str, tables: dict) -> tuple[str, list[str]]:
    """``text`` with every marked figure replaced by its value from ``tables``, and the names of the figures
    whose table was missing (those keep their old value)."""
    missing: list[str] = []

    def replace(m):
        try:
            v = value(m.group("name"), tables)
        except FigureError:
            missing.append(m.group("name"))
            return m.group(0)
        return f"<!-- study:{m.group('name')} -->{v}<!-- /study -->"

    return MARKER.sub(replace, text), missing


def describe(names, results: Path | None = None) -> str:
    """The figures ``names`` as the README quotes them, one "what: value" line each, from the tables in
    ``results`` (``data/results`` by default): a notebook's conclusion prints these, so it says what the README
    says."""
    from mailstudy.outputs import data_dir

    tables = load_tables(Path(results) if results is not None else data_dir("results"))
    lines = []
    for name in names:
        try:
            lines.append(f"{FIGURES[name].what}: {value(name, tables)}")
        except FigureError as exc:
            lines.append(f"{name}: not available ({exc})")
    return "\n".join(lines)


def snapshot(results: Path, docs_results: Path, mode: str) -> list[Path]:
    """Copy the quoted columns of each table in ``results`` to ``docs_results`` (whole files or nothing), with
    ``run.json`` saying which run (``mode``: full or quick) they come from."""
    from mailstudy.outputs import write_atomically

    Path(docs_results).mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in load_tables(results, KEEP).items():
        cols = [c for c in df.columns if c in KEEP[name] or any(c == f"{k}_{s}" for k in KEEP[name]
                                                                  for s in ("lo", "hi")) or c == "seeds"]
        written.append(write_atomically(Path(docs_results) / f"{name}.csv", df[cols].to_csv(index=False)))
    written.append(write_atomically(Path(docs_results) / "run.json", json.dumps({"mode": mode}) + "\n"))
    return written


def fill_readme(readme: Path, docs_results: Path) -> list[str]:
    """Refill ``readme`` from the snapshot in ``docs_results`` (written only when a value changed); returns the
    figures left as they were for want of their table."""
    from mailstudy.outputs import write_atomically

    text = Path(readme).read_text(encoding="utf-8")
    filled, missing = fill(text, load_tables(docs_results))
    if filled != text:
        write_atomically(Path(readme), filled)
    return missing


def after_study(quick: bool, results: Path | None = None, root: Path | None = None) -> str:
    """What ``mailstudy study`` does at its end: after a full run, snapshot the quoted tables into
    ``docs/results``, refill README.md's figures and rebuild its thumbnails; after a quick run, nothing (the
    README quotes the full study). Returns one line saying what it did."""
    from mailstudy.faces.thumbnails import KEY_FIGURES, thumbnail
    from mailstudy.outputs import data_dir, project_root

    if quick:
        return "README.md figures: left as they were (a quick run; a full run refills them)"
    root = Path(root) if root is not None else project_root()
    results = Path(results) if results is not None else data_dir("results")
    if not (root / "README.md").is_file():
        return f"README.md figures: no README.md in {root} to refill"
    snapshot(results, root / "docs" / "results", "full")
    missing = fill_readme(root / "README.md", root / "docs" / "results")
    figures = data_dir("figures") if results == data_dir("results") else results.parent / "figures"
    for name in KEY_FIGURES:
        if (figures / f"{name}.png").exists():
            thumbnail(figures / f"{name}.png", root / "docs" / f"{name}.png")
    return "README.md figures: refilled from docs/results/" + (f" (no table for {', '.join(missing)})"
                                                              if missing else "")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from mailstudy.outputs import data_dir, project_root

    p = argparse.ArgumentParser(prog="python -m mailstudy.faces.readme_figures", description=__doc__.split("\n")[0])
    p.add_argument("--from", dest="source", nargs="?", const=str(data_dir("results")), default=None,
                   help="snapshot the output tables of this folder (default data/results) into docs/results first")
    p.add_argument("--mode", default="full", choices=("full", "quick"), help="the run the tables come from")
    p.add_argument("--check", action="store_true", help="only check that README.md is up to date (exit 1 if not)")
    args = p.parse_args(argv)
    root = project_root()
    docs_results = root / "docs" / "results"
    if args.source:
        snapshot(Path(args.source), docs_results, args.mode)
    readme = root / "README.md"
    if args.check:
        text = readme.read_text(encoding="utf-8")
        filled, missing = fill(text, load_tables(docs_results))
        stale = filled != text
        print("README.md figures are " + ("stale: run python -m mailstudy.faces.readme_figures" if stale
                                          else "up to date") + (f"; no table for {', '.join(missing)}" if missing
                                                                else ""))
        return 1 if stale or missing else 0
    missing = fill_readme(readme, docs_results)
    if missing:
        print(f"README.md: no table for {', '.join(missing)} (left as they were)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
