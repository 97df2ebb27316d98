"""The numbers the session engine must keep: counts of every strategy, client profile and a few fleets.

Why: the engine in ``mailstudy/live`` was rebuilt from two (issue 15), and the rebuild must change no number.
:func:`measure` runs a fixed set of seeded scenarios on one server kind and returns their deterministic counts
(bytes each way less Dovecot's clock text, commands, round trips, integrity, the commands sent);
``tests/data/engine_baseline.json`` holds what the engine before the rebuild measured, and
``tests/test_engine_baseline.py`` asserts the engine reproduces it exactly.

Run ``python tests/engine_baseline.py`` to print the current numbers as JSON (how the file was made).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASELINE = Path(__file__).parent / "data" / "engine_baseline.json"

#: Strategy scenarios: SessionSpec keywords on a 30-message buchner2009 corpus, seed 5.
STRATEGIES = {
    "imap-header-first": {"protocol": "imap", "strategy": "header-first"},
    "imap-download-all": {"protocol": "imap", "strategy": "download-all"},
    "pop3-header-first": {"protocol": "pop3", "strategy": "header-first"},
    "pop3-download-all-keep": {"protocol": "pop3", "strategy": "download-all"},
    "pop3-download-all-delete": {"protocol": "pop3", "strategy": "download-all", "pop3_mode": "delete"},
    "imap-header-first-per-message": {"protocol": "imap", "strategy": "header-first", "batch": False},
    "imap-download-all-pipelined": {"protocol": "imap", "strategy": "download-all", "batch": False,
                                    "pipelining": True, "window": 4},
    "pop3-header-first-pipelined": {"protocol": "pop3", "strategy": "header-first", "pipelining": True},
    "pop3-delete-pipelined": {"protocol": "pop3", "strategy": "download-all", "pop3_mode": "delete",
                              "pipelining": True},
    "imap-preview": {"protocol": "imap", "strategy": "header-first", "preview": 2048},
    "pop3-preview": {"protocol": "pop3", "strategy": "header-first", "preview": 2048},
}
#: Fleet scenarios: FleetSpec keywords (a few simulated hours).
FLEETS = {
    "fleet-imap-mix": {"devices": 3, "clients": ("thunderbird", "k9", "mbsync")},
    "fleet-neomutt-condstore": {"devices": 2, "clients": ("neomutt", "thunderbird-online"), "condstore": True},
    "fleet-pop3-lose": {"devices": 2, "clients": ("pop3-delete", "k9-pop3"), "lose_device": 0, "lose_at_h": 1.5},
    "fleet-idle": {"devices": 2, "clients": ("thunderbird", "thunderbird-pop3-headers"), "idle": True},
}
#: Counts that depend on timing, not on the engine: with a window, whether a reply arrives before the next
#: command leaves decides whether two commands are one flight (measured: 31 or 32 on two identical runs).
TIMING_DEPENDENT = {"imap-download-all-pipelined": ("round_trips",)}
FLEET_BASE = {"hours": 3, "rate": 96, "start_messages": 2, "poll_s": 1800, "seed": 7, "read_fraction": 0.5}
SESSION_KEYS = ("bytes_up", "bytes_down", "commands", "round_trips", "exchanges_failed")


def _less_clock(down: bytes, bytes_down: int) -> int:
    from mailstudy.servers.dovecot import IDLE_NOTICE, TIMING_TEXT

    return bytes_down - sum(len(m) for rx in (TIMING_TEXT, IDLE_NOTICE) for m in rx.findall(down))


def _session(result) -> dict:
    out = {k: result.metrics[k] for k in SESSION_KEYS}
    out["bytes_down"] = _less_clock(result.trace.stream("down"), result.metrics["bytes_down"])
    out["sent"] = [f"{e.command} {e.arguments}".strip() for e in result.exchanges]
    return out


def strategies(kind: str) -> dict:
    from mailstudy.corpus import generate
    from mailstudy.live.access import Known, SessionSpec, run_session
    from mailstudy.servers import make_server

    corpus = generate(30, "buchner2009", seed=5)
    out = {}
    for name, kw in STRATEGIES.items():
        server = make_server(kind)
        server.mailboxes[server.account.user] = corpus.raws()
        with server:
            a = server.account
            r = run_session(server.host, server.imap_port, server.pop3_port, a.user, a.password,
                            SessionSpec(read_fraction=0.3, seed=5, **kw), Known(corpus.raws()))
        counts = {**_session(r), **{k: None for k in TIMING_DEPENDENT.get(name, ())}}
        out[name] = {**counts, "integrity_ok": r.integrity_ok, "headers_fetched": r.headers_fetched,
                     "bodies_fetched": r.bodies_fetched, "opened": list(r.opened)}
    return out


def clients(kind: str) -> dict:
    from mailstudy.live.client_profiles import CLIENTS
    from mailstudy.study.fleet import client_sessions

    out = {}
    for client in CLIENTS:
        for phase, o in client_sessions(client, kind, messages=10, sizes="buchner2009", seed=3, read_fraction=0.3):
            out[f"{client} / {phase}"] = {**_session(o.result), "headers": o.headers, "bodies": o.bodies,
                                          "partial_bodies": o.partial_bodies, "new_listed": len(o.new_listed),
                                          "read": len(o.read)}
    return out


def fleets(kind: str) -> dict:
    from mailstudy.live.fleet import FleetSpec, plan, run_fleet
    from mailstudy.servers import make_server
    from mailstudy.study.fleet import counts_only

    out = {}
    for name, kw in FLEETS.items():
        spec = FleetSpec(**{**FLEET_BASE, **kw})
        p = plan(spec)
        server = make_server(kind)
        server.mailboxes[server.account.user] = p.start_raws
        with server:
            r = run_fleet(server, spec, p)
        # and the columns added after the recording (issue 18: connections as clients keep them): the recorded
        # counts are compared as they were, and these fleets run with behaviour "poll" as they did
        drop = ("server_version", "pop3_second_session", "behaviour", "way", "kept", "keeps_connection", "logins",
                "staleness_max_s",
                # and the wire columns COMPRESS brought (issue 18): these fleets run uncompressed, wire = protocol
                "compress", "compressed", "wire_bytes_up", "wire_bytes_down", "wire_bytes_down_less_timing")
        out[name] = {"fleet": {k: v for k, v in counts_only([r.fleet])[0].items() if k not in drop},
                     "devices": [{k: v for k, v in row.items() if k not in drop} for row in counts_only(r.devices)],
                     "sessions": [{k: v for k, v in row.items() if k not in drop}
                                  for row in counts_only(r.sessions)]}
    return out


def measure(kind: str) -> dict:
    return {"strategies": strategies(kind), "clients": clients(kind), "fleets": fleets(kind)}


def summary(doc: dict) -> list[tuple]:
    """(server, scenario, bytes_up, bytes_down, commands, round_trips, integrity) for the report's table."""
    rows = []
    for kind, m in doc.items():
        for name, r in {**m["strategies"], **m["clients"]}.items():
            rows.append((kind, name, r["bytes_up"], r["bytes_down"], r["commands"], r["round_trips"],
                         r.get("integrity_ok", True)))
    return rows


if __name__ == "__main__":
    kinds = sys.argv[1:] or ["embedded", "dovecot"]
    json.dump({k: measure(k) for k in kinds}, sys.stdout, indent=1, sort_keys=True, default=str)
    print()
