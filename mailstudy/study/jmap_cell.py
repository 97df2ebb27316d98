"""One JMAP cell: a fresh Cyrus with the cell's mailbox, one measured JMAP session per repeat, tidy rows.

Why a module of its own: :class:`~mailstudy.study.experiment.Experiment` drives IMAP and POP3 through
:func:`~mailstudy.live.access.run_session`; JMAP has its own client (:mod:`mailstudy.live.jmap`) and, for now,
only one server (Cyrus) and no capture yet. Until JMAP joins the experiment grid (issue 20 item 4), this
gives ``mailstudy session --protocol jmap`` rows shaped like the experiment's, so a JMAP row sits in the same
table as an IMAP or POP3 one. Through a network profile, the session goes through the same link relay as IMAP and
POP3 (:class:`~mailstudy.link.Link` in front of Cyrus's HTTP port).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

from mailstudy.corpus import SIZE_PRESETS, generate, load
from mailstudy.link import Link, Profile, get_profile
from mailstudy.live.access import Known
from mailstudy.live.jmap import JmapSpec, run_jmap_session
from mailstudy.servers import make_server

#: the servers that speak JMAP
JMAP_SERVERS = ("cyrus",)
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


def run_jmap_cell(cell: JmapCell, progress=None, results: list | None = None) -> list[dict]:
    """Every repeat of ``cell`` on a fresh server; one row per session, like ``run_experiment``'s."""
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
                result = run_jmap_session(host, port, server.account.user, server.account.password, cell.spec(),
                                          known)
            result.link = profile if link else None
        if results is not None:
            results.append(result)
        row = {**asdict(cell), **result.row(), **described, "protocol": "jmap", "repeat": repeat,
               "label": LABELS[cell.strategy], "mailbox_bytes": corpus.total_bytes, **profile.params()}
        for k in ("host", "imap_port", "pop3_port"):
            row.pop(k, None)
        rows.append(row)
    return rows
