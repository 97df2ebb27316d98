"""What the header-first listing costs as a share of downloading everything, per strategy and per client profile.

Why a module of its own: the article's central claim is that IMAP shows headers before any download, so a user
decides what to fetch. Its price is the listing's bytes against download-all's on the same mailbox. With mail
as it arrives (about 7 KB of header a message, :mod:`mailstudy.corpus.arrival`) that share is far from the
0.4 % the minimal headers gave, and it differs by client: a client that fetches a few header fields pays less
than one that fetches whole headers, and a POP3 client downloads everything whatever the user reads.

For each seed, on the seeded mailbox of ``messages`` (nothing opened):

* the four strategies: each one's bytes down, and its share of the same protocol's download-all;
* each client profile's first sync with nothing opened: its bytes down, and its share of the same protocol's
  download-all of that mailbox.

Summarized as every study number is (:mod:`mailstudy.study.intervals`: median over the seeds, 95 % bootstrap
interval). The sessions run on loopback: the counts are what matter here, and they do not depend on the link.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from mailstudy.live.client_profiles import CLIENTS, get_client
from mailstudy.study.experiment import Experiment, run_experiment
from mailstudy.study.fleet import client_sessions
from mailstudy.study.intervals import summarize


def strategy_rows(server: str, messages: int, sizes: str, seed: int) -> list[dict]:
    """One row per strategy on the seed's mailbox: bytes down and the share of the protocol's download-all."""
    base = Experiment(server=server, messages=messages, sizes=sizes, seed=seed, read_fraction=0.0)
    rows = []
    for protocol in ("imap", "pop3"):
        (hf,) = run_experiment(replace(base, protocol=protocol, strategy="header-first"))
        (da,) = run_experiment(replace(base, protocol=protocol, strategy="download-all"))
        for r in (hf, da):
            rows.append({"kind": "strategy", "name": r["label"], "protocol": protocol, "server": server,
                         "seed": seed, "messages": messages, "bytes_down": r["bytes_down"],
                         "download_all_bytes": da["bytes_down"], "share": r["bytes_down"] / da["bytes_down"]})
    return rows


def client_rows(server: str, messages: int, sizes: str, seed: int, download_all: dict[str, int],
                clients: Iterable[str] = CLIENTS) -> list[dict]:
    """One row per client profile: its first sync's bytes down with nothing opened, and the share of
    ``download_all[protocol]`` (the same mailbox's download-all bytes)."""
    rows = []
    for name in clients:
        protocol = get_client(name).protocol
        (_phase, first), *_ = client_sessions(name, server, messages, sizes, seed, read_fraction=0.0,
                                              new_messages=0)
        got = first.result.metrics["bytes_down"]
        rows.append({"kind": "client", "name": name, "protocol": protocol, "server": server, "seed": seed,
                     "messages": messages, "bytes_down": got, "download_all_bytes": download_all[protocol],
                     "share": got / download_all[protocol]})
    return rows


def seed_rows(server: str, messages: int, sizes: str, seed: int, clients: tuple[str, ...]) -> list[dict]:
    """Every row of one seed: the strategies, then the clients against that seed's download-all."""
    strategies = strategy_rows(server, messages, sizes, seed)
    whole = {r["protocol"]: r["download_all_bytes"] for r in strategies}
    return strategies + client_rows(server, messages, sizes, seed, whole, clients)


def listing_share(server: str = "embedded", messages: int = 30, sizes: str = "buchner2009",
                  seeds: Iterable[int] = range(10), clients: Iterable[str] = CLIENTS, executor=None,
                  progress=None) -> dict:
    """``{"summary": ..., "seeds": ...}``: the per-seed rows of :func:`strategy_rows` and :func:`client_rows`, and
    their summary per strategy or client (``share``, ``bytes_down`` with ``_lo``/``_hi``, ``seeds``). The seeds
    run on ``executor`` when one is given (counts only: :func:`mailstudy.study.experiment.count_executor`);
    ``progress(done, total)`` after each seed."""
    import pandas as pd

    seeds, clients = list(seeds), tuple(clients)
    if executor is None:
        parts = (seed_rows(server, messages, sizes, s, clients) for s in seeds)
    else:
        parts = (f.result() for f in [executor.submit(seed_rows, server, messages, sizes, s, clients)
                                      for s in seeds])
    rows: list[dict] = []
    for i, part in enumerate(parts):
        rows += part
        if progress is not None:
            progress(i + 1, len(seeds))
    per_seed = pd.DataFrame(rows)
    summary = summarize(per_seed, ["kind", "name", "protocol", "server"],
                        ["share", "bytes_down", "download_all_bytes"])
    return {"summary": summary, "seeds": per_seed}
