"""One validated value for what a measured session needs: server, protocol, workload, corpus, link and seed.

Why: the CLI's ``session`` (a strategy or ``--client``), an experiment and its sweeps, and a fleet's devices all
describe a session with the same values. :class:`SessionParams` holds them and checks each once, through the one
rule for it in :mod:`mailstudy.live.values` (a strategy's own values through :class:`~mailstudy.live.access.
SessionSpec`, which uses the same rules), so a read fraction of 1.5 or NaN gives one message wherever it comes
from. The workload is a strategy name (``header-first``, ``download-all``) or a client profile's name
(:mod:`mailstudy.live.client_profiles`); a client profile brings its own protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailstudy.link.profiles import Profile, get_profile as link_profile
from mailstudy.live.access import SessionSpec
from mailstudy.live.client_profiles import CLIENTS, get_client
from mailstudy.live.values import STRATEGIES, ParameterValueError, check_choice, check_count, check_headers, check_sizes
from mailstudy.servers import SERVER_KINDS

DEFAULT_SIZES = "buchner2009"


@dataclass(frozen=True)
class SessionParams:
    """Everything one session depends on; invalid values fail here, each with its one message."""

    server: str = "embedded"
    protocol: str = "imap"
    workload: str = "header-first"  # a strategy, or a client profile's name
    pop3_mode: str = "keep"
    messages: int = 200
    sizes: str = DEFAULT_SIZES
    headers: str = "realistic"  # the corpus's header model: mail as it arrives, or the "minimal" control
    mailbox: str | None = None  # real mail (mbox, Maildir or .eml folder) instead of a generated corpus
    seed: int = 0
    read_fraction: float = 0.0
    batch: bool = True
    pipelining: bool = False
    window: int = 0
    preview: int = 0
    profile: str | Profile = "loopback"  # the network: a profile's name or a custom Profile
    tls: str = "none"  # none (clear text), implicit (IMAPS/POP3S) or starttls; see mailstudy.live.clients
    tls_version: str = "1.3"  # with TLS: the one version the client accepts
    compress: bool = False  # IMAP: COMPRESS=DEFLATE (RFC 4978) where the server offers it

    def __post_init__(self) -> None:
        check_choice("server", self.server, SERVER_KINDS)
        if self.workload not in STRATEGIES:
            get_client(self.workload)  # not a strategy: it must name a client profile (its one message)
            object.__setattr__(self, "protocol", self.client().protocol)
        check_count("messages", self.messages)
        if self.mailbox is None:
            check_sizes(self.sizes)
            check_headers(self.headers)
        self.spec()  # protocol, mode, read fraction, preview: SessionSpec's rules
        try:
            link_profile(self.profile)
        except ValueError as exc:
            raise ParameterValueError(str(exc)) from None

    @property
    def is_client(self) -> bool:
        return self.workload in CLIENTS

    def client(self):
        """The client profile this session runs (only when the workload names one)."""
        return get_client(self.workload)

    def spec(self) -> SessionSpec:
        """The strategy's parameters (a client profile's sessions use its protocol and the read draw)."""
        strategy = self.workload if self.workload in STRATEGIES else STRATEGIES[0]
        return SessionSpec(protocol=self.protocol, strategy=strategy, pop3_mode=self.pop3_mode,
                           read_fraction=self.read_fraction, seed=self.seed, batch=self.batch,
                           pipelining=self.pipelining, window=self.window, preview=self.preview,
                           tls=self.tls, tls_version=self.tls_version, compress=self.compress)


__all__ = ["DEFAULT_SIZES", "SessionParams"]
