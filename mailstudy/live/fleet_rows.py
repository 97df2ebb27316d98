"""A fleet's tidy rows: one per session (kept as the run goes), one per device and one for the fleet.

Why a module of its own: what a fleet measured (:class:`~mailstudy.live.fleet_run.FleetState`) and how it is
summed are two jobs. :class:`FleetTally` holds what every row needs (the state, what was delivered, what the
server still holds, who holds what) and makes each kind of row in its own method.
"""

from __future__ import annotations

import imaplib
import statistics
from dataclasses import dataclass
from functools import cached_property

from mailstudy.live.engine import Catalog, fetches, message_data
from mailstudy.live.fleet_run import SESSION_COUNTS, FleetState
from mailstudy.live.fleet_spec import FleetError, FleetResult, FleetSpec, Plan
from mailstudy.live.keeping import KEPT_WAYS

SUMMED = ("server_timing_bytes",)  # summed over sessions as the counts are


def on_server(server, catalog: Catalog) -> set[str]:
    """The messages the account still holds at the end (read by Message-ID, outside any measured session)."""
    try:
        with imaplib.IMAP4(server.host, server.imap_port, timeout=60) as c:
            c.login(server.account.user, server.account.password)
            _typ, data = c.select("INBOX", readonly=True)
            found: set[str] = set()
            if int(data[0] or 0):
                _typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                for f in fetches(data):
                    if message_data(f) is not None:
                        found.add(catalog.identify_fields(message_data(f), "end-of-fleet inventory"))
            c.logout()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise FleetError(f"fleet finished but the server could not be asked what it holds: {exc}") from exc
    return found


def quantiles(values: list[float]) -> tuple[float | None, float | None]:
    """Median and 95th percentile (None, None for no values)."""
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[-1]


def _sums(rows: list[dict]) -> dict:
    return {c: sum(r[c] for r in rows) for c in (*SESSION_COUNTS, "network_s", *SUMMED)}


@dataclass
class FleetTally:
    """The end of a fleet's run, and the rows it makes."""

    spec: FleetSpec
    plan: Plan
    state: FleetState
    on_server: set[str]
    server: object

    @cached_property
    def delivered(self) -> set[str]:
        return set(self.state.arrived_at)

    @cached_property
    def holders(self) -> dict[str, list[int]]:
        """sha256 -> the devices that hold it whole."""
        return {sha: [i for i, d in enumerate(self.state.devices) if sha in d.store] for sha in self.delivered}

    @cached_property
    def params(self) -> dict:
        s = self.spec
        return {"devices": s.devices, "clients": ",".join(s.clients), "hours": s.hours, "rate": s.rate,
                "start_messages": s.start_messages, "sizes": s.sizes, "read_fraction": s.read_fraction,
                "seed": s.seed, "condstore": s.condstore, "idle": s.idle, "behaviour": s.behaviour,
                "compress": s.compress, "profile": s.profile,
                "lose_device": s.lose_device, "lose_at_h": s.lose_at_h, "server": self.server.name,
                "server_version": self.server.version}

    def delays(self, i: int) -> list[float]:
        """Staleness of device ``i``: for each arrival it showed, simulated seconds from arrival to first shown."""
        shown, arrived = self.state.first_shown[i], self.state.arrived_at
        return [shown[m.sha256] - arrived[m.sha256] for m in self.plan.corpus.messages[self.plan.start:]
                if m.sha256 in shown]

    def result(self) -> FleetResult:
        devices = [self.device_row(i) for i in range(self.spec.devices)]
        return FleetResult(sessions=self.state.sessions, devices=devices, fleet=self.fleet_row(devices))

    def device_row(self, i: int) -> dict:
        st, dev, prof = self.state, self.state.devices[i], self.state.profiles[i]
        mine = [s for s in st.sessions if s["device"] == i]
        listed, held = dev.listed & self.delivered, set(dev.store) & self.delivered
        n_delivered = len(self.delivered) or 1
        agree = sum(1 for sha in listed if (sha in dev.seen) == (sha in st.truth))
        delays = self.delays(i)
        med, p95 = quantiles(delays)
        way = self.spec.way_of(i)
        return {**self.params, "device": i, "client": prof.name, "protocol": prof.protocol,
                "poll_s": self.spec.poll_of(i), "uses_idle": way == "idle", "way": way,
                "keeps_connection": way in KEPT_WAYS, "compressed": any(s["compressed"] for s in mine),
                "sessions": len(mine), "logins": len(mine), **_sums(mine),
                "headers_downloaded": sum(s["headers"] for s in mine),
                "bodies_downloaded": sum(dev.body_downloads.values()),
                "partial_bodies": sum(s["partial_bodies"] for s in mine),
                "reads": sum(s["read"] for s in mine), "listed": len(listed), "held_whole": len(held),
                "availability_listed": len(listed) / n_delivered, "availability_offline": len(held) / n_delivered,
                "read_agreement": agree / len(listed) if listed else None,
                "sole_holder": sum(1 for sha, h in self.holders.items() if h == [i] and sha not in self.on_server),
                "lost": dev.lost, "held_at_loss": st.held_at_loss if dev.lost else None,
                "staleness_median_s": med, "staleness_p95_s": p95, "staleness_max_s": max(delays, default=None),
                "shown_new": len(delays)}

    def fleet_row(self, device_rows: list[dict]) -> dict:
        st, devices = self.state, self.state.devices
        # read-state agreement over the fleet: messages some device lists whose flag matches the truth everywhere
        listed_anywhere = {sha for d in devices for sha in d.listed & self.delivered}
        agreeing = sum(1 for sha in listed_anywhere
                       if all((sha in d.seen) == (sha in st.truth) for d in devices if sha in d.listed))
        downloads = sum(sum(d.body_downloads.values()) for d in devices)
        distinct = len({sha for d in devices for sha in d.body_downloads})
        delays = [x for i in range(self.spec.devices) for x in self.delays(i)]
        med, p95 = quantiles(delays)
        alone = [sha for sha, h in self.holders.items() if sha not in self.on_server]
        return {
            **self.params, "sessions": len(st.sessions), **_sums(st.sessions),
            "delivered": len(self.delivered), "arrivals": len(self.plan.arrivals),
            "reads_planned": len(self.plan.readers), "reads": len(st.truth), "body_downloads": downloads,
            "duplicate_downloads": downloads - distinct,
            "read_agreement": agreeing / len(listed_anywhere) if listed_anywhere else None,
            "on_server": len(self.on_server & self.delivered),
            "messages_only_on_one_device": sum(1 for sha in alone if len(self.holders[sha]) == 1),
            "messages_lost": sum(1 for sha in alone if not self.holders[sha]),
            "availability_min": min(r["availability_listed"] for r in device_rows),
            "staleness_median_s": med, "staleness_p95_s": p95, "staleness_max_s": max(delays, default=None),
            "logins": len(st.sessions), "condstore_offered": st.condstore_offered, "condstore_used": st.condstore_used,
        }
