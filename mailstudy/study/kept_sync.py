"""One sync of each client as it ships, against the reconnect-and-poll baseline: its modelled time on slow links
and its bytes on the wire (notebook 03's kept-connection table).

Why a module of its own: :mod:`mailstudy.study.kept` runs whole fleet days on loopback (bytes, logins,
staleness); this asks what one sync costs in time on a 4G or a geostationary satellite link when the client
keeps its connection, as Thunderbird, K-9 and NeoMutt do, against the same client connecting, starting TLS and
logging in for it. Each cell is real: a fresh server (with COMPRESS offered in the ``+ COMPRESS`` cell), the
client's first sync of a seeded mailbox, then ``new_messages`` delivered and the one sync measured. Both go
through the model's baseline link (:data:`mailstudy.link.BASELINE`), and :func:`mailstudy.link.predict` gives
the sync's time on each profile, on the study's network conditions (:mod:`mailstudy.study.network`: by default
implicit TLS 1.3 and each profile's loss).

What "one sync" is: reconnecting, from ``connect()`` to the end of ``LOGOUT`` (the handshake, TLS, the greeting and
the login included). Over a kept connection, the client's own step after new mail arrives
(:class:`~mailstudy.live.idle.KeptConnection`: ``wake`` for IDLE, ``check`` for NOOP polling or a whole sync over
the connection), from the client's first flight after the server's push (or its timer): the push's own trip
(half a round trip) is how late the client learns of the mail, which the fleet reports as staleness, and is not
counted here (our choice, so both times start when the client decides to sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailstudy.corpus import generate
from mailstudy.link import BASELINE, Link, get_profile, predict
from mailstudy.link.model import session_from_chunks, session_of
from mailstudy.live.client_profiles import Catalog, Destination, get_client
from mailstudy.live.clients import ClientTLS
from mailstudy.live.devices import Device
from mailstudy.live.idle import KeptConnection
from mailstudy.live.keeping import KEPT_WAYS, ships_with
from mailstudy.live.values import check_count
from mailstudy.outputs import data_dir
from mailstudy.protocol.metrics import session_metrics
from mailstudy.servers import make_server
from mailstudy.study.experiment import write_csv_atomically
from mailstudy.study.kept import KEPT_CLIENTS, VARIANTS, compress_default
from mailstudy.study.network import conditions as network_conditions

#: The links the table shows (notebook 03): a mobile one and the slowest round trip the study has.
SYNC_PROFILES = ("4g", "satellite-geo")
#: The columns of :func:`kept_sync_table` before the one time column per profile (``sync_s_<profile>``).
SYNC_COLUMNS = ("server", "client", "ships_with", "compress_default", "variant", "way", "compressed", "logins",
                "commands", "round_trips", "bytes_up", "bytes_down", "wire_bytes_up", "wire_bytes_down")


@dataclass(frozen=True)
class SyncCell:
    """One client's one variant (:data:`mailstudy.study.kept.VARIANTS`) on one server."""

    server: str
    client: str
    variant: str
    messages: int = 30
    new_messages: int = 2
    seed: int = 0
    tls: str = "implicit"
    tls_version: str = "1.3"

    @property
    def behaviour(self) -> str:
        return next(b for name, b, _z in VARIANTS if name == self.variant)

    @property
    def compress(self) -> bool:
        return next(z for name, _b, z in VARIANTS if name == self.variant)

    @property
    def way(self) -> str:
        """``reconnect``, or the kept way (``idle``, ``noop``, ``poll``) the client ships with."""
        prof = get_client(self.client)
        kept = self.behaviour == "profile" and prof.protocol == "imap" and prof.keep_connection
        return prof.new_mail if kept and prof.new_mail in KEPT_WAYS else "reconnect"


def _slice_metrics(trace, marks: tuple[int, int, int], exchanges) -> tuple[dict, list, list]:
    """The counts of what a kept connection's trace recorded after ``marks`` (its lengths of chunks, wire and
    compressed stream before the sync), and the wire chunks and exchanges of that slice."""
    chunks = trace.chunks[marks[0]:]
    wire = None if trace.wire is None else trace.wire[marks[1]:]
    z = None if trace.compressed is None else trace.compressed[marks[2]:]
    t0 = (wire or chunks)[0].t
    mine = [e for e in exchanges if e.t_sent is not None and e.t_sent >= t0]
    m = session_metrics(chunks, mine, t_start=t0, time_scale=1e-9, wire=wire, compressed=z).as_row()
    return m, wire if wire is not None else chunks, mine


def measure_sync(cell: SyncCell) -> tuple[dict, object]:
    """Run ``cell``: its counts (a row) and the model's :class:`~mailstudy.link.model.Session` of the one sync."""
    prof = get_client(cell.client)
    corpus = generate(cell.messages + cell.new_messages, "buchner2009", cell.seed)
    raws = [m.raw for m in corpus.messages]
    tls = cell.tls != "none"
    server = make_server(cell.server, tls=tls, compress=cell.compress)
    server.mailboxes[server.account.user] = raws[:cell.messages]
    device = Device(name=cell.client, keep_bytes=False)
    with server:
        upstreams = [(server.host, server.ports_for(p, cell.tls)) for p in ("imap", "pop3")]
        with Link(BASELINE, upstreams, seed=cell.seed) as link:
            account = Destination(link.host, *link.ports, server.account.user, server.account.password,
                                  Catalog(raws), tls=ClientTLS(cell.tls, cell.tls_version, server.tls_ca)
                                  if tls else None)
            if cell.way == "reconnect":
                prof.run(account, device, set())
                server.deliver_many(server.account.user, raws[cell.messages:])
                result = prof.run(account, device, set()).result
                result.link = BASELINE
                m = result.metrics
                row = {**{k: m[k] for k in SYNC_COLUMNS[8:]}, "logins": 1, "compressed": result.compressed}
                return row, session_of(result)
            conn = KeptConnection(prof, account, device, mode=cell.way)
            conn.open(set())
            tr = conn.trace
            marks = (len(tr.chunks), len(tr.on_wire), len(tr.compressed or ()))
            server.deliver_many(server.account.user, raws[cell.messages:])
            conn.wake(set()) if cell.way == "idle" else conn.check(set())
            whole = conn.close(final_sync=False).result
    m, wire, _mine = _slice_metrics(tr, marks, whole.exchanges)
    row = {**{k: m[k] for k in SYNC_COLUMNS[8:]}, "logins": 0, "compressed": whole.compressed}
    return row, session_from_chunks(wire, wire[0].t, None, (), 1e-9, BASELINE.rtt_s, connected=True)


def sync_cells(servers=("embedded",), clients=KEPT_CLIENTS, messages: int = 30, new_messages: int = 2,
               seed: int = 0, conditions="realistic") -> list[SyncCell]:
    """Per server and client: reconnect-and-poll, as shipped and (for a client that asks for it) as shipped with
    COMPRESS offered; TLS as the study's ``conditions`` say."""
    net = network_conditions(conditions)
    check_count("messages", messages, 1)
    check_count("new_messages", new_messages, 1)
    tls = {"tls": net.tls or "none", "tls_version": net.tls_version or "1.3"}
    return [SyncCell(s, c, name, messages, new_messages, seed, **tls) for s in servers for c in clients
            for name, _b, z in VARIANTS if not z or get_client(c).compression]


def kept_sync_table(servers=("embedded",), clients=KEPT_CLIENTS, profiles=SYNC_PROFILES, messages: int = 30,
                    new_messages: int = 2, seed: int = 0, conditions="realistic",
                    results: str | Path | None = data_dir("results")):
    """One row per :func:`sync_cells` cell: what the client ships with, the sync's logins, commands, round
    trips and bytes (the protocol's and on the wire) and its modelled seconds on each of ``profiles``
    (``sync_s_<profile>``, on the ``conditions``' loss). With ``results``, also written atomically as
    ``kept_sync_times.csv`` there."""
    import pandas as pd

    net = network_conditions(conditions)
    links = [get_profile(net.profile(p)) for p in profiles]
    rows = []
    for cell in sync_cells(servers, clients, messages, new_messages, seed, conditions):
        counts, session = measure_sync(cell)
        rows.append({"server": cell.server, "client": cell.client, "ships_with": ships_with(get_client(cell.client)),
                     "compress_default": compress_default(cell.client), "variant": cell.variant, "way": cell.way,
                     **counts, **{f"sync_s_{p.name}": predict(session, p)["duration_s"] for p in links}})
    table = pd.DataFrame(rows)[[*SYNC_COLUMNS, *(f"sync_s_{p.name}" for p in links)]]
    if results is not None:
        write_csv_atomically(table, Path(results) / "kept_sync_times.csv")
    return table


#: What identifies a row of :func:`kept_sync_table` (the rest are its measurements, summarized over seeds).
SYNC_KEYS = ("server", "client", "ships_with", "compress_default", "variant", "way")


def kept_sync_summary(servers=("embedded",), clients=KEPT_CLIENTS, profiles=SYNC_PROFILES, messages: int = 30,
                      new_messages: int = 2, seeds=(0,), conditions="realistic",
                      results: str | Path | None = data_dir("results")):
    """:func:`kept_sync_table` over ``seeds`` (each a fresh mailbox and link sample): one row per cell with each
    measurement's median over the seeds, its 95 % interval (``_lo``, ``_hi``) and ``seeds``
    (:func:`mailstudy.study.intervals.summarize`). With ``results``, written atomically as
    ``kept_sync_times.csv`` (the summary) and ``kept_sync_times_seeds.csv`` (each seed's rows) there."""
    import pandas as pd

    from mailstudy.study.intervals import summarize
    from mailstudy.study.parameters import check_seeds

    per_seed = pd.concat([kept_sync_table(servers, clients, profiles, messages, new_messages, seed, conditions,
                                          results=None).assign(seed=seed) for seed in check_seeds(list(seeds))],
                         ignore_index=True)
    metrics = [c for c in per_seed.columns if c not in (*SYNC_KEYS, "compressed", "seed")]
    summary = summarize(per_seed, SYNC_KEYS, metrics)
    if results is not None:
        write_csv_atomically(per_seed, Path(results) / "kept_sync_times_seeds.csv")
        write_csv_atomically(summary, Path(results) / "kept_sync_times.csv")
    return summary


__all__ = ["SYNC_COLUMNS", "SYNC_KEYS", "SYNC_PROFILES", "SyncCell", "kept_sync_summary", "kept_sync_table",
           "measure_sync", "sync_cells"]
