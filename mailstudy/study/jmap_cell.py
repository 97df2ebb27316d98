"""One JMAP cell: a fresh Cyrus with the cell's mailbox, one measured JMAP session per repeat, tidy rows.

Why a module of its own: :class:`~mailstudy.study.experiment.Experiment` drives IMAP and POP3 through
:func:`~mailstudy.live.access.run_session`; JMAP has its own client (:mod:`mailstudy.live.jmap`) and, for now,
only one server (Cyrus) and no capture yet. Until JMAP joins the experiment grid (issue 20 item 4), this
gives ``mailstudy session --protocol jmap`` rows shaped like the experiment's, so a JMAP row sits in the same
table as an IMAP or POP3 one. Through a network profile, the session goes through the same link relay as IMAP and
POP3 (:class:`~mailstudy.link.Link` in front of Cyrus's HTTP port).

The third column (:func:`three_protocols`, :func:`with_intervals`): what notebooks 01 and 03 show and
``bench/three_protocols.py`` tabulates: IMAP, POP3 and JMAP on one Cyrus store, IMAP and POP3 on Dovecot as the
reference, header-first and download-all, over several seeds, measured through the link or predicted by the
model. :func:`catch_up` is notebook 04's device view: what one device pays to catch up and to hear of new mail.

Measured on Cyrus 3.6.1 (loopback, our finding, not a protocol's cost): a response larger than about 4 KB is
written as a first 4,096-byte segment and the rest, and the rest waits ~40 ms for the client's delayed ACK
(Nagle's algorithm on the server meeting Linux's delayed ACK), so each JMAP blob download of a message over 4 KB
takes ~42 ms on loopback; POP3 on Cyrus shows the same ~40 ms per command. The model takes its work from these
loopback sessions, so those waits are in its times too; Dovecot's column shows the same protocols without them.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import pandas as pd

from mailstudy.corpus import SIZE_PRESETS, generate, load
from mailstudy.link import Link, Profile, get_profile, predict
from mailstudy.live.access import Known
from mailstudy.live.jmap import JMAP_SERVERS, JmapSpec, run_jmap_session
from mailstudy.servers import make_server

LABELS = {"header-first": "JMAP header-first", "download-all": "JMAP download-all"}


@dataclass(frozen=True)
class JmapCell:
    """The parameters of a JMAP cell (the names :class:`Experiment` uses for the same things)."""

    server: str = "cyrus"
    strategy: str = "header-first"
    messages: int = 200
    sizes: str = "buchner2009"
    seed: int = 0
    read_fraction: float = 0.0
    repeats: int = 1
    mailbox: str | None = None
    compress: str = "identity"
    preview: int = 0  # header-first: read only the first N bytes of each opened message's text
    profile: str | Profile = "loopback"  # the network: a profile's name or a custom Profile

    def __post_init__(self) -> None:
        self.spec()  # strategy, fraction and compression checked with a clear message
        if self.server not in JMAP_SERVERS:
            raise ValueError(f"JMAP is served by {', '.join(JMAP_SERVERS)} only, not {self.server!r}")
        if self.messages < 0:
            raise ValueError(f"messages must be >= 0, not {self.messages}")
        if self.mailbox is None and self.sizes not in SIZE_PRESETS:
            raise ValueError(f"unknown size preset {self.sizes!r}; choose one of {sorted(SIZE_PRESETS)}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, not {self.repeats}")
        get_profile(self.profile)  # an unknown name fails here (ProfileError is a ValueError)

    def spec(self) -> JmapSpec:
        return JmapSpec(strategy=self.strategy, read_fraction=self.read_fraction, seed=self.seed,
                        compress=self.compress, preview=self.preview)

    def corpus(self, progress=None):
        if self.mailbox is None:
            if progress is None:
                return generate(self.messages, self.sizes, self.seed)
            return generate(self.messages, self.sizes, self.seed, progress=progress)
        loaded = load(self.mailbox)
        return loaded[: self.messages] if self.messages else loaded


def run_jmap_cell(cell: JmapCell, progress=None, results: list | None = None, capture: str | None = None,
                  capture_backend: str = "auto", reports: list | None = None) -> list[dict]:
    """Every repeat of ``cell`` on a fresh server; one row per session, like ``run_experiment``'s.

    ``capture``: each session is also recorded as a pcap there (``-rN`` before the suffix when there are several
    repeats) with its sidecar, on the client's side of the link as for IMAP and POP3; the row says how
    (``capture_*``, ``capture_port``: the HTTP port to name to ``mailstudy analyze --port``)."""
    from mailstudy.capture import Capture, CaptureError, choose_backend
    from mailstudy.outputs import OutputError, check_output
    from mailstudy.study.experiment import capture_path

    paths = [capture_path(capture, cell, r) for r in range(cell.repeats)] if capture is not None else []
    if capture is not None:
        choose_backend(capture_backend)  # fail with a clear CaptureError before starting anything
        for path in paths:
            try:
                check_output(path, sidecar=True, what="capture")
            except OutputError as exc:
                raise CaptureError(str(exc)) from None
    corpus = cell.corpus(progress)
    known = Known(corpus.raws())
    profile = get_profile(cell.profile)
    rows = []
    for repeat in range(cell.repeats):
        server = make_server(cell.server)
        server.mailboxes[server.account.user] = corpus.raws()
        if progress is not None:
            server.progress = progress
        with server:
            described = server.describe()
            link = Link(profile, [(server.host, server.http_port)], seed=cell.seed + repeat) if profile.shaped \
                else None
            with link or nullcontext():
                host, port = (link.host, link.ports[0]) if link else (server.host, server.http_port)
                cap = Capture(paths[repeat], [port], backend=capture_backend, host=host) if paths else None
                with cap or nullcontext():
                    result = run_jmap_session(host, port, server.account.user, server.account.password,
                                              cell.spec(), known)
            result.link = profile if link else None
        if results is not None:
            results.append(result)
        row = {**asdict(cell), **result.row(), **described, "protocol": "jmap", "repeat": repeat,
               "label": LABELS[cell.strategy], "mailbox_bytes": corpus.total_bytes, **profile.params()}
        if cap is not None:
            report = cap.finish(result.trace, {**asdict(cell), **described, "repeat": repeat})
            row.update(capture_path=str(report.path), capture_backend=report.backend,
                       capture_complete=report.complete, capture_rebuilt=report.rebuilt,
                       capture_reason=report.reason, capture_packets=report.packets, capture_port=port)
            if reports is not None:
                reports.append(report)
        for k in ("host", "imap_port", "pop3_port"):
            row.pop(k, None)
        rows.append(row)
    return rows


# -- the third column: IMAP, POP3 and JMAP on one Cyrus store, IMAP and POP3 on Dovecot as the reference ---------
#: (server, protocol) of each column, in the order the notebooks show them
COLUMNS = (("cyrus", "imap"), ("cyrus", "pop3"), ("cyrus", "jmap"), ("dovecot", "imap"), ("dovecot", "pop3"))
STRATEGIES = ("header-first", "download-all")
#: what the tables summarise (counts are exact per seed; times vary with the machine)
MEASURES = ("bytes_up", "bytes_down", "round_trips", "time_to_list_s", "duration_s")


def column_name(server: str, protocol: str) -> str:
    return f"{protocol.upper()} on {server.capitalize()}"


def _one(server: str, protocol: str, strategy: str, messages: int, seed: int, read_fraction: float,
         profile, results: list) -> list[dict]:
    if protocol == "jmap":
        return run_jmap_cell(JmapCell(server=server, strategy=strategy, messages=messages, seed=seed,
                                      read_fraction=read_fraction, profile=profile), results=results)
    from mailstudy.study.experiment import Experiment, run_experiment

    return run_experiment(Experiment(server=server, protocol=protocol, strategy=strategy, messages=messages,
                                     seed=seed, read_fraction=read_fraction, profile=profile), results=results)


def three_protocols(messages: int = 30, seeds=(0, 1, 2), strategies=STRATEGIES, read_fraction: float = 0.0,
                    profile: str | Profile = "loopback", columns=COLUMNS, model_profiles=()) -> pd.DataFrame:
    """One row per (column, strategy, seed): a fresh server per session, the same seeded buchner2009 mailbox in
    every column of a seed. Clear text on every column (Cyrus is not set up for TLS here; the others follow it so
    the columns compare). ``profile``: the network the sessions run through (the link). ``model_profiles``: for
    each, rows whose times are the model's prediction (:func:`mailstudy.link.predict`) from the same sessions,
    marked ``modelled`` (the sessions then run on loopback, as the model requires)."""
    rows = []
    for seed in seeds:
        for strategy in strategies:
            for server, protocol in columns:
                results: list = []
                got = _one(server, protocol, strategy, messages, seed, read_fraction,
                           "loopback" if model_profiles else profile, results)
                for row, result in zip(got, results):
                    base = {**row, "column": column_name(server, protocol), "modelled": False}
                    rows.append(base)
                    for p in model_profiles:
                        prof = get_profile(p)
                        times = predict(result, prof)
                        rows.append({**base, **prof.params(), "modelled": True,
                                     **{k: times[k] for k in ("duration_s", "time_to_list_s")}})
    return pd.DataFrame(rows)


def with_intervals(df: pd.DataFrame, measures=MEASURES, by=("profile", "modelled", "strategy", "column")) -> pd.DataFrame:
    """Each measure's median over the seeds with its 95 % bootstrap interval (``_lo``, ``_hi``) and ``seeds``: the
    study's one summary (:func:`mailstudy.study.intervals.summarize`)."""
    from mailstudy.study.intervals import summarize

    keys = [k for k in by if k in df.columns]
    out = summarize(df, keys, [m for m in measures if m in df.columns])
    return out[keys + [c for m in measures if m in df.columns for c in (m, f"{m}_lo", f"{m}_hi")] + ["seeds"]]


def _sync_row(seed: int, protocol: str, workload: str, result, **extra) -> dict:
    m = result.metrics if result is not None else {}
    return {"seed": seed, "protocol": protocol, "workload": workload, "column": column_name("cyrus", protocol),
            **{k: m.get(k) for k in ("bytes_up", "bytes_down", "round_trips", "duration_s")},
            "listed": result.headers_fetched if result is not None else None, **extra}


def catch_up(messages: int = 30, new: int = 5, seeds=(0, 1, 2), wait_s: float = 0.5,
             results: list | None = None, profile: str | Profile = "loopback") -> pd.DataFrame:
    """What one device that already holds the mailbox pays on Cyrus, IMAP against JMAP (module
    :mod:`mailstudy.live.jmap_sync` says what each sends): a change sync after ``new`` messages arrived, a poll
    that finds nothing, and push (IDLE with Cyrus's idled; JMAP's EventSource, which Debian's Cyrus declines):
    the latency from delivery to the client knowing and the bytes while it waited ``wait_s``. The JMAP client
    kept its session resource from the sync before (no discovery in a change sync or a poll); IMAP logs in anew,
    as a client that polls does. ``results``: each row's measured session (a ``SessionResult``, its trace for
    the energy ledger) is appended there, in the rows' order. ``profile``: the network between the device and
    Cyrus (the link in front of its IMAP and HTTP ports; deliveries reach the server directly)."""
    from mailstudy.live.engine import Destination
    from mailstudy.live.jmap_sync import (imap_modseq, jmap_state, run_imap_changes, run_imap_idle,
                                          run_jmap_changes, run_jmap_poll, run_jmap_push)
    from mailstudy.servers.cyrus import CyrusServer

    rows, kept, prof = [], [], get_profile(profile)
    for seed in seeds:
        corpus, extra = generate(messages, "buchner2009", seed), generate(new + 2, "buchner2009", seed + 10_000)
        known = Known(corpus.raws() + extra.raws())
        server = CyrusServer(mailboxes={"alice": corpus.raws()}, idled=True)
        with server, (Link(prof, [(server.host, server.imap_port), (server.host, server.http_port)], seed=seed)
                      if prof.shaped else nullcontext()) as link:
            host, (imap_port, http_port) = (link.host, link.ports) if link else \
                (server.host, (server.imap_port, server.http_port))
            user, password, raws = server.account.user, server.account.password, extra.raws()
            dest = Destination(host, imap_port, server.pop3_port, user, password, known)
            at = (host, http_port, user, password)
            (state, session), (modseq, last_uid) = jmap_state(*at), imap_modseq(dest)
            server.deliver_many(user, raws[:new])
            jm, state2 = run_jmap_changes(*at, state, known, session=session)
            imap_sync = run_imap_changes(dest, modseq, last_uid)
            modseq2, last2 = imap_modseq(dest)
            jmap_poll = run_jmap_poll(*at, state2, known, session=session)
            imap_poll = run_imap_changes(dest, modseq2, last2)
            for protocol, workload, result in (("jmap", "change-sync", jm), ("imap", "change-sync", imap_sync),
                                               ("jmap", "poll", jmap_poll), ("imap", "poll", imap_poll)):
                rows.append(_sync_row(seed, protocol, workload, result))
                kept.append(result)
            for push in (run_imap_idle(dest, lambda: server.deliver(user, raws[new]), wait_s),
                         run_jmap_push(*at, lambda: server.deliver(user, raws[new + 1]), wait_s)):
                rows.append(_sync_row(seed, push.protocol, "push", push.result, offered=push.offered,
                                      why=push.why, latency_s=push.latency_s,
                                      waiting_bytes=push.waiting_bytes_down + push.waiting_bytes_up))
                kept.append(push.result)
    if results is not None:
        results.extend(kept)
    return pd.DataFrame(rows).assign(profile=prof.name)


def available_columns(columns=COLUMNS) -> tuple[tuple, str]:
    """The columns whose servers can run here, and why the others cannot ("" when all can)."""
    from mailstudy.servers.cyrus import cyrus_available
    from mailstudy.servers.dovecot import dovecot_available

    why = {"cyrus": cyrus_available(), "dovecot": dovecot_available()}
    kept = tuple(c for c in columns if why.get(c[0]) is None)
    missing = sorted({f"{s}: {why[s]}" for s, _ in columns if why.get(s)})
    return kept, "; ".join(missing)


def interval_table(summary: pd.DataFrame, measures=("bytes_up", "bytes_down", "round_trips"),
                   index=("profile", "modelled", "strategy"), digits: int = 3) -> pd.DataFrame:
    """A table to read: one row per ``index`` value, one column per (measure, column), each cell the median with
    its 95 % interval over the seeds in brackets when it has width ("13,753 [13,740-13,761]")."""
    def cell(row, m):
        med, lo, hi = row[m], row[f"{m}_lo"], row[f"{m}_hi"]
        fmt = (lambda v: f"{v:,.0f}") if m.endswith(("bytes_up", "bytes_down", "round_trips")) else \
            (lambda v: f"{v:.{digits}f}")
        return fmt(med) if lo == hi else f"{fmt(med)} [{fmt(lo)}-{fmt(hi)}]"

    keys = [k for k in index if k in summary.columns]
    out = summary[keys + ["column"]].copy()
    for m in measures:
        out[m] = [cell(r, m) for _, r in summary.iterrows()]
    table = out.pivot(index=keys, columns="column", values=list(measures))
    order = [column_name(s, p) for s, p in COLUMNS]
    return table.reindex(columns=[(m, c) for m in measures for c in order if (m, c) in table.columns])


def list_round_trips(messages: int = 30, seed: int = 0) -> dict:
    """JMAP's header-first list (the list's properties with ``preview``, nothing opened) against IMAP's
    header-first on Cyrus, the same seeded mailbox: round trips and bytes of each, and JMAP's split into
    discovery (the ``GET`` requests before the first API call) and API requests (``POST``)."""
    from mailstudy.live.jmap import LIST_PROPERTIES
    from mailstudy.study.experiment import Experiment, run_experiment

    results: list = []
    (jrow,) = run_jmap_cell(JmapCell(messages=messages, seed=seed), results=results)
    (irow,) = run_experiment(Experiment(server="cyrus", protocol="imap", strategy="header-first",
                                        messages=messages, seed=seed))
    commands = [e.command for e in results[0].exchanges]
    api = commands.index("POST") if "POST" in commands else len(commands)
    return {"seed": seed, "messages": messages, "listed": jrow["headers_fetched"],
            "jmap_round_trips": jrow["round_trips"], "jmap_discovery": api,
            "jmap_api_requests": commands.count("POST"), "jmap_bytes": jrow["bytes_up"] + jrow["bytes_down"],
            "imap_round_trips": irow["round_trips"], "imap_bytes": irow["bytes_up"] + irow["bytes_down"],
            "preview_listed": "preview" in LIST_PROPERTIES}


# -- notebook 04's fleet: JMAP devices beside IMAP and POP3 devices, all on Cyrus ---------------------------------
#: One client profile per protocol, the ones that do the same thing: list the headers, open what the user reads
#: (NeoMutt over IMAP, JMAP header-first), and POP3's keep mode (Thunderbird over POP3: every message down on
#: every device). Our choice of pairing; each profile's behaviour is in ``mailstudy profiles --clients`` and
#: :data:`mailstudy.live.fleet_jmap.JMAP_CLIENTS`.
FLEET_CLIENTS = ("neomutt", "thunderbird-pop3", "jmap")
#: Simulated hours of each fleet: 2 (not the notebook's 4): Cyrus holds each answer over 4 KB ~40 ms (Nagle
#: against delayed ACK, measured, see the module docstring), so a fleet's wall time is its sessions' count times
#: that; two hours of polls every 15 minutes keep the whole sweep near a minute. The rows are scaled per day.
FLEET_HOURS = 2.0


def fleet_three_protocols(seeds=(0, 1, 2), device_counts=(1, 2, 4, 8), clients=FLEET_CLIENTS,
                          hours: float = FLEET_HOURS, rate: float = 100.0, executor=None,
                          cache_dir=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fleets of each of ``clients`` alone at each device count on a fresh Cyrus per fleet (the same store
    serves the three protocols), over ``seeds`` (arrivals, sizes, reads), polls every 15 minutes, half the new
    mail read: (the fleet rows of every seed, scaled per day; their medians with 95 % intervals, one row per
    client and device count, with ``protocol``). Counts do not depend on the machine: ``executor`` may run the
    fleets in parallel."""
    from mailstudy.live.fleet import device_profile
    from mailstudy.study.device_counts import device_count_cells, run, summarize_fleet

    cells = device_count_cells(["cyrus"], clients, device_counts, hours, rate, seeds=seeds)
    rows = run(cells, cache_dir=cache_dir, executor=executor)["fleet"]
    summary = summarize_fleet(rows)
    protocol = {c: device_profile(c).protocol for c in clients}
    for df in (rows, summary):
        df.insert(0, "protocol", [protocol[c] for c in df["clients"]])
    return rows, summary
