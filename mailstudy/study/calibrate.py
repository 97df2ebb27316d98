"""Calibration: each real client and the client profile that claims to be it, on the same server and mailbox,
both captured and both read by the project's analyzer, scored side by side.

Why: the study's answers are only as good as its client profiles, and docs/design.md, "Accuracy", asks that a profile
claiming to be a client is run beside that client with the difference printed. For each real client
(:mod:`mailstudy.live.real_clients`) this runs, on a fresh server holding the same seeded mailbox, the real client
twice (a first sync, then a sync with nothing new) and then, on another fresh server with the same mailbox, its
profile twice (same phases, the user opening nothing: the real clients are not asked to open a message). Every
session is captured with :class:`mailstudy.capture.Capture` (tcpdump or scapy: a real client has no socket trace
to rebuild a capture from) and read with :func:`mailstudy.offline.analyze.analyze_pcap`, so both sides are counted
by the one definition, on the wire.

The verdict, per phase: *agrees* when the commands by verb are equal, round trips within +-1 and bytes each way
within 3 % (the issue's tolerances, ours to choose); otherwise *differs* and by how much. A client with no
profile gets its measured rows and the verdict ``no profile``. Round trips here are the wire count a capture
sees (docs/design.md, "Words": a server answering mid-flight can split a flight), the same for both sides.

Which profile claims to be which client: :data:`PROFILE_FOR` lists candidates, most specific first; the first
that :mod:`mailstudy.live.client_profiles` defines is used (so a profile added later is picked up by its name).
Every call into ``live``'s client-profile API is in one section below (``profile_for`` ... ``_profile_trace``), so a
change there is one edit here.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median_low

from mailstudy import __version__
from mailstudy.capture import Capture, CaptureError
from mailstudy.live.real_clients import (
    DEFAULT_TIMEOUT_S,
    REAL_CLIENTS,
    Target,
    get_real_client,
    missing_programs,
    run_real_client,
)
from mailstudy.offline.analyze import analyze_pcap
from mailstudy.outputs import sidecar_path, write_atomically
from mailstudy.processes import owned_tempdir
from mailstudy.servers import make_server

#: The phases each side runs, in order, on one server and one client state.
PHASES = ("first sync", "nothing new")
#: Profiles that claim to be each real client, most specific first (the first one defined is used).
PROFILE_FOR: dict[str, tuple[str, ...]] = {
    "neomutt": ("neomutt",),
    "mbsync": ("mbsync",),
    "offlineimap": ("offlineimap3", "offlineimap"),
    "getmail-imap": ("getmail6-imap", "getmail-imap"),
    "mpop": ("mpop", "thunderbird-pop3"),
    "getmail-pop3": ("getmail6-pop3", "getmail-pop3", "getmail6"),
    "fetchmail": ("fetchmail", "fetchmail-pop3"),
}
#: The tolerances of "agrees" (ours, from the issue): round trips within this many, bytes within this share.
ROUND_TRIP_TOLERANCE = 1
BYTES_TOLERANCE = 0.03
COLUMNS = ("client", "package", "package_version", "profile", "server", "server_version", "messages", "seed",
           "repeats", "phase", "side", "status", "reason", "sessions", "commands", "round_trips", "round_trips_min",
           "round_trips_max", "bytes_up", "bytes_down", "verbs", "verdict", "mailstudy_version")


@dataclass
class Measured:
    """One side of one phase: what the analyzer read from its capture."""

    status: str  # "ok", "failed", "timeout", "missing", "not run" (an earlier phase did not finish), "error"
    reason: str = ""
    sessions: int = 0
    commands: int = 0
    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    verbs: Counter = field(default_factory=Counter)
    rt_min: int | None = None  # over repeats (None: one run)
    rt_max: int | None = None

    @property
    def counted(self) -> bool:
        return self.status in ("ok", "failed", "timeout") and self.sessions > 0


def package_version(package: str) -> str:
    """The installed Debian package's version (``dpkg-query``), or "" where that cannot be told."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def verbs_text(verbs: Counter) -> str:
    """``CAPA 1, USER 1, RETR 30`` in the order first sent."""
    return ", ".join(f"{v} {n}" for v, n in verbs.items())


def verdict(real: Measured, prof: Measured | None) -> str:
    """``agrees``, ``differs: ...`` (how), ``no profile``, or why the two cannot be compared."""
    if prof is None:
        return "no profile"
    if not real.counted or real.status != "ok":
        return f"not compared: the real client {real.status}"
    if not prof.counted or prof.status != "ok":
        return f"not compared: the profile {prof.status} ({prof.reason})"
    diffs = []
    verb_diff = {v: prof.verbs.get(v, 0) - real.verbs.get(v, 0) for v in {**real.verbs, **prof.verbs}}
    verb_diff = {v: d for v, d in verb_diff.items() if d}
    if verb_diff:
        diffs.append("commands " + ", ".join(f"{v} {d:+d}" for v, d in sorted(verb_diff.items())))
    if abs(prof.round_trips - real.round_trips) > ROUND_TRIP_TOLERANCE:
        diffs.append(f"round trips {prof.round_trips - real.round_trips:+d}")
    for way in ("bytes_up", "bytes_down"):
        r, p = getattr(real, way), getattr(prof, way)
        share = (p - r) / r if r else (0.0 if p == r else float("inf"))
        if abs(share) > BYTES_TOLERANCE:
            diffs.append(f"{way.replace('_', ' ')} {share * 100:+.1f} %")
    return "agrees" if not diffs else "differs: " + "; ".join(diffs)


# ---- one session, captured and read -------------------------------------------------------------------------
def _measure(srv, pcap: Path, port: int, run, trace=None) -> tuple[Measured, object]:
    """Run ``run()`` under a capture of the server's ports and read the capture; returns what it measured and
    what ``run()`` returned. ``trace(returned)``: the session's socket trace where there is one (a profile's),
    to check the capture holds every byte the client saw (:meth:`Capture.finish`; a sidecar is written)."""
    with Capture(pcap, [srv.imap_port, srv.pop3_port]) as cap:
        if cap.rebuilt:
            raise CaptureError("calibrate needs a live capture (tcpdump or scapy: run as root or give tcpdump "
                               "CAP_NET_RAW); a real client has no socket trace to rebuild one from")
        got = run()
    m = Measured(status="ok")
    if trace is not None:
        report = cap.finish(trace(got), {"protocol": "imap" if port == srv.imap_port else "pop3",
                                         "server": srv.name, "server_version": srv.version})
        if not report.complete:
            m.status, m.reason = "error", "; ".join(report.warnings)[:200] or "capture incomplete"
    analysis = analyze_pcap(pcap, [port])
    for s in analysis.sessions:
        m.sessions += 1
        for key in ("commands", "round_trips", "bytes_up", "bytes_down"):
            setattr(m, key, getattr(m, key) + int(s.metrics[key]))
        m.verbs.update(e.command for e in s.exchanges)
    return m, got


# ---- live's client profiles: every call into their API is in this section -----------------------------------
def profile_for(client: str) -> str | None:
    """The client profile that claims to be the real client ``client``, or None."""
    from mailstudy.live.client_profiles import CLIENTS

    return next((p for p in PROFILE_FOR.get(client, ()) if p in CLIENTS), None)


def _profile_protocol(name: str) -> str:
    from mailstudy.live.client_profiles import get_client

    return get_client(name).protocol


def _new_device(name: str):
    from mailstudy.live.devices import Device

    return Device(name=name)


def _run_profile(name: str, srv, raws: list[bytes], device):
    """One sync session of the profile ``name`` on ``device`` (the user opens nothing)."""
    from mailstudy.live.client_profiles import Catalog, Destination, get_client

    account = Destination(srv.host, srv.imap_port, srv.pop3_port, srv.account.user, srv.account.password,
                          Catalog(raws))
    return get_client(name).run(account, device, set())


def _profile_trace(outcome):
    """The socket trace of a profile's sync session (what :func:`_run_profile` returned)."""
    return outcome.result.trace


# ---- the two sides -------------------------------------------------------------------------------------------
def _serve(kind: str, raws: list[bytes]):
    srv = make_server(kind)
    srv.mailboxes[srv.account.user] = list(raws)
    return srv


def run_real_side(client: str, server: str, raws: list[bytes], work: Path,
                  timeout: float = DEFAULT_TIMEOUT_S) -> tuple[dict[str, Measured], str]:
    """The real client's two phases on a fresh server: ``{phase: Measured}`` and the server's version."""
    rc = get_real_client(client)
    missing = missing_programs(rc)
    if missing:
        run = run_real_client(client, Target("127.0.0.1", 1, "", ""), work / "state", timeout)  # says why
        return {p: Measured(status=run.status, reason=run.reason) for p in PHASES}, ""
    out: dict[str, Measured] = {}
    work.mkdir(parents=True, exist_ok=True)
    with _serve(server, raws) as srv:
        port = srv.imap_port if rc.protocol == "imap" else srv.pop3_port
        target = Target(srv.host, port, srv.account.user, srv.account.password)
        for i, phase in enumerate(PHASES):
            m, run = _measure(srv, work / f"real-{i}.pcap", port,
                              lambda: run_real_client(client, target, work / "state", timeout))
            m.status, m.reason = run.status, run.reason
            out[phase] = m
            if run.status != "ok":  # a client that failed or hung once is not run again: say so
                for later in PHASES[i + 1:]:
                    out[later] = Measured(status="not run", reason=f"the {phase} {run.status}")
                break
        return out, srv.version


def run_profile_side(profile: str, server: str, raws: list[bytes], work: Path) -> dict[str, Measured]:
    """The profile's two phases on a fresh server with the same mailbox and one device."""
    from mailstudy.errors import MailstudyError

    out: dict[str, Measured] = {}
    work.mkdir(parents=True, exist_ok=True)
    device = _new_device(profile)
    with _serve(server, raws) as srv:
        port = srv.imap_port if _profile_protocol(profile) == "imap" else srv.pop3_port
        for i, phase in enumerate(PHASES):
            try:
                m, _ = _measure(srv, work / f"profile-{i}.pcap", port,
                                lambda: _run_profile(profile, srv, raws, device), _profile_trace)
            except CaptureError:
                raise  # no capture: nothing here can be measured, which is the command's error, not a row's
            except MailstudyError as exc:
                m = Measured(status="error", reason=" ".join(str(exc).split())[:200])
            out[phase] = m
    return out


def _combine(runs: list[dict[str, Measured]]) -> dict[str, Measured]:
    """One Measured per phase from repeated runs: the median (low) round trips and bytes, the range of round
    trips, the first run's commands by verb (a run whose commands differ from the first's is said in ``reason``);
    a run that did not finish makes the phase's status its status."""
    out = {}
    for phase in PHASES:
        ms = [r[phase] for r in runs]
        bad = next((m for m in ms if m.status != "ok"), None)
        if bad is not None:
            out[phase] = bad
            continue
        first = ms[0]
        m = Measured("ok", sessions=first.sessions, commands=first.commands, verbs=first.verbs,
                     round_trips=median_low([x.round_trips for x in ms]),
                     bytes_up=median_low([x.bytes_up for x in ms]), bytes_down=median_low([x.bytes_down for x in ms]),
                     rt_min=min(x.round_trips for x in ms), rt_max=max(x.round_trips for x in ms))
        if any(x.verbs != first.verbs for x in ms):
            m.reason = "commands by verb differ between repeats: " + " / ".join(verbs_text(x.verbs) for x in ms)
        out[phase] = m
    return out


def _keep_captures(work: Path, captures: Path, client: str, side: str, k: int) -> None:
    for i, phase in enumerate(PHASES):
        pcap = work / f"{side}-{i}.pcap"
        name = f"{client}-{side}-{k + 1}-{phase.replace(' ', '-')}.pcap"
        if pcap.exists():
            shutil.copyfile(pcap, captures / name)
        if sidecar_path(pcap).exists():
            shutil.copyfile(sidecar_path(pcap), sidecar_path(captures / name))


def calibrate_client(client: str, server: str = "dovecot", raws: list[bytes] | None = None,
                     timeout: float = DEFAULT_TIMEOUT_S, *, messages: int = 30, seed: int = 0, repeats: int = 1,
                     captures: str | Path | None = None) -> list[dict]:
    """Rows for one real client and its profile: per phase a ``real`` row and a ``profile`` row, each with the
    phase's verdict. ``raws``: the mailbox (default: the seeded corpus of ``messages``). ``repeats``: run each side
    this many times, each on a fresh server (round trips on the wire depend on when the server's answers cut a
    pipelining client's writes; the rows give the median and the range). ``captures``: a folder to keep every
    pcap in (named CLIENT-SIDE-REPEAT-PHASE.pcap); by default they go with the temporary folder."""
    if raws is None:
        from mailstudy.corpus import generate

        raws = [m.raw for m in generate(messages, seed=seed).messages]
    if repeats < 1:
        raise ValueError(f"repeats must be 1 or more, not {repeats}")
    rc = get_real_client(client)
    profile = profile_for(client)
    folder = owned_tempdir("calibrate")
    reals, profs, version = [], [], ""
    try:
        for k in range(repeats):
            real, version = run_real_side(client, server, raws, folder / f"real-{k}", timeout)
            reals.append(real)
            if profile:
                profs.append(run_profile_side(profile, server, raws, folder / f"profile-{k}"))
            if captures is not None:
                _keep_captures(folder / f"real-{k}", Path(captures), client, "real", k)
                _keep_captures(folder / f"profile-{k}", Path(captures), client, "profile", k)
            if any(m.status == "missing" for m in real.values()):
                break  # nothing to repeat
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    real = _combine(reals)
    prof = _combine(profs) if profile else {}
    base = {"client": client, "package": rc.package, "package_version": package_version(rc.package),
            "profile": profile or "", "server": server, "server_version": version, "messages": len(raws),
            "seed": seed, "repeats": len(reals), "mailstudy_version": __version__}
    rows = []
    for phase in PHASES:
        v = verdict(real[phase], prof.get(phase) if profile else None)
        for side, m in (("real", real[phase]), ("profile", prof.get(phase))):
            if m is None:
                continue
            rows.append({**base, "phase": phase, "side": side, "status": m.status, "reason": m.reason,
                         "sessions": m.sessions, "commands": m.commands, "round_trips": m.round_trips,
                         "round_trips_min": m.rt_min if m.rt_min is not None else m.round_trips,
                         "round_trips_max": m.rt_max if m.rt_max is not None else m.round_trips,
                         "bytes_up": m.bytes_up, "bytes_down": m.bytes_down, "verbs": verbs_text(m.verbs),
                         "verdict": v})
    return rows


def calibrate(clients: list[str] | None = None, server: str = "dovecot", *, messages: int = 30, seed: int = 0,
              timeout: float = DEFAULT_TIMEOUT_S, repeats: int = 1, captures: str | Path | None = None,
              progress=None) -> list[dict]:
    """Rows for every client in ``clients`` (default: all of :data:`REAL_CLIENTS`) on one seeded mailbox (see
    :func:`calibrate_client` for ``repeats`` and ``captures``). ``progress(client)`` is called before each client
    (a command line prints what it is doing)."""
    from mailstudy.corpus import generate

    names = list(clients or REAL_CLIENTS)
    for name in names:
        get_real_client(name)  # an unknown name fails before any server starts
    raws = [m.raw for m in generate(messages, seed=seed).messages]
    rows: list[dict] = []
    for name in names:
        if progress is not None:
            progress(name)
        rows.extend(calibrate_client(name, server, raws, timeout, messages=messages, seed=seed, repeats=repeats,
                                     captures=captures))
    return rows


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """The table as CSV at ``path``, whole or not at all."""
    return write_atomically(path, rows_csv(rows))


def format_tables(rows: list[dict]) -> str:
    """A table per client: phase, side, status, commands, round trips, bytes each way, verbs; then verdicts."""
    out = []
    by_client: dict[str, list[dict]] = {}
    for r in rows:
        by_client.setdefault(r["client"], []).append(r)
    for client, rs in by_client.items():
        r0 = rs[0]
        head = f"{client} (Debian {r0['package']} {r0['package_version'] or '?'})"
        head += f" vs profile {r0['profile']}" if r0["profile"] else " (no profile)"
        runs = f", median of {r0['repeats']} runs" if r0.get("repeats", 1) > 1 else ""
        out.append(f"{head}, on {r0['server']} {r0['server_version']}, {r0['messages']} messages, seed {r0['seed']}"
                   f"{runs}")
        table = [("phase", "side", "status", "commands", "round trips", "bytes up", "bytes down", "commands by verb")]
        for r in rs:
            status = r["status"] + (f" ({r['reason']})" if r["reason"] else "")
            rt = str(r["round_trips"])
            if r.get("round_trips_min") != r.get("round_trips_max"):
                rt += f" ({r['round_trips_min']}-{r['round_trips_max']})"
            table.append((r["phase"], r["side"], status, str(r["commands"]), rt,
                          f"{r['bytes_up']:,}", f"{r['bytes_down']:,}", r["verbs"]))
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]) - 1)]
        for t in table:
            out.append("  " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in
                                        enumerate(zip(t, widths))) + "  " + t[-1])
        for phase in PHASES:
            v = next((r["verdict"] for r in rs if r["phase"] == phase), None)
            if v is not None:
                out.append(f"  verdict, {phase}: {v}")
        out.append("")
    return "\n".join(out)


def format_markdown(rows: list[dict]) -> str:
    """The table of docs/calibration.md: a row per client, phase and side (round trips with their range over
    repeats), the verdict on each phase's real row; then each client's commands by verb, real side."""
    out = ["| client (Debian) | profile | phase | side | commands | round trips | bytes up | bytes down | verdict |",
           "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    verbs: list[str] = []
    last_client = last_phase = None
    for r in rows:
        rt = str(r["round_trips"])
        if r.get("round_trips_min") != r.get("round_trips_max"):
            rt += f" ({r['round_trips_min']}-{r['round_trips_max']})"
        client = f"{r['client']} ({r['package']} {r['package_version']})" if r["client"] != last_client else ""
        profile = (r["profile"] or "none") if r["client"] != last_client else ""
        phase = r["phase"] if (r["client"], r["phase"]) != last_phase else ""
        status = "" if r["status"] == "ok" else f" ({r['status']})"
        out.append(f"| {client} | {profile} | {phase} | {r['side']}{status} | {r['commands']} | {rt} | "
                   f"{r['bytes_up']:,} | {r['bytes_down']:,} | {r['verdict'] if r['side'] == 'real' else ''} |")
        if r["side"] == "real":
            verbs.append(f"- {r['client']}, {r['phase']}: `{r['verbs']}`")
        last_client, last_phase = r["client"], (r["client"], r["phase"])
    return "\n".join(out + ["", "Commands by verb, real clients:", ""] + verbs) + "\n"


__all__ = ["BYTES_TOLERANCE", "COLUMNS", "PHASES", "PROFILE_FOR", "ROUND_TRIP_TOLERANCE", "Measured", "calibrate",
           "calibrate_client", "format_markdown", "format_tables", "profile_for", "rows_csv", "verdict", "write_rows"]
