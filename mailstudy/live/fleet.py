"""A fleet: N devices on one account over a simulated day, every session real, the clock simulated.

Why: the article's central claims are about devices (IMAP keeps one mailbox for all of them; POP3 brings mail
down to one; losing an IMAP device loses nothing). A fleet turns them into measured facts: mail arrives as a
seeded Poisson process and is really delivered into the running server; each device polls on its own interval
(staggered starts) with its client profile (:mod:`mailstudy.live.client_profiles`); the user reads a seeded
share of the new mail, each message on one device picked by a seeded draw; optionally one device is lost.

The clock is simulated: nothing sleeps. Events (arrivals, polls, the loss) are sorted by simulated time (at the
same moment an arrival comes before a poll, then by device number) and the sessions run back to back against
the real server. A session's seconds on the network come from :mod:`mailstudy.live.network_time` (loopback
measured, the latency model for a named network). Staleness is simulated time: the poll that first shows a
message minus its arrival. A device reads a message in the session that first lists it, so under IMAP the
\\Seen flag is on the server from then on and under POP3 only on that device.

With ``final_round`` (the default) every device still in use syncs once more at the end of the period, without
reading (the user has stopped), so the end state is "after one full round of polls"; that is the state the
rows describe.

The parts: :mod:`mailstudy.live.fleet_spec` (the parameters and the seeded plan), :mod:`mailstudy.live.fleet_run`
(the loop: events and one step per kind), :mod:`mailstudy.live.fleet_rows` (the tidy rows),
:mod:`mailstudy.live.fleet_jmap` (JMAP devices: on a server that speaks JMAP, Cyrus, a device may run a JMAP
client profile of :data:`JMAP_CLIENTS`; its read state is JMAP's ``$seen``, shared through the server). This module
starts a run and is where callers import from.
"""

from __future__ import annotations

from mailstudy.link import BASELINE, Link, LinkError, Profile
from mailstudy.live.client_profiles import CLIENTS
from mailstudy.live.fleet_jmap import JMAP_CLIENTS, device_profile, refusal
from mailstudy.live.fleet_rows import FleetTally, on_server
from mailstudy.live.fleet_run import FleetRun
from mailstudy.live.fleet_spec import DAY_S, FleetError, FleetResult, FleetSpec, Plan, plan
from mailstudy.live.network_time import LOOPBACK
from mailstudy.live.pop3_lock import probe_concurrent_pop3


def run_fleet(server, spec: FleetSpec, the_plan: Plan | None = None, progress=None) -> FleetResult:
    """Run ``spec`` against ``server`` (running, its INBOX holding ``plan.start_raws``); tidy rows out.

    ``progress(done, total)`` is called after each event. A session that fails stops the fleet with a
    :class:`FleetError` saying when and where. With a network ``profile`` the devices reach the server through
    the latency model's baseline link (:data:`mailstudy.link.BASELINE`), so each session's modelled seconds
    come from work timed as a network makes it (see :mod:`mailstudy.link.model`); on loopback, directly."""
    http = getattr(server, "http_port", 0)  # a JMAP port (Cyrus): JMAP devices connect there
    why = refusal(spec.clients, server.name, bool(http))
    if why:
        raise FleetError(why)
    if spec.profile == LOOPBACK:
        return _run(server, (server.host, server.imap_port, server.pop3_port, http), None, spec, the_plan,
                    progress)
    ends = [(server.host, server.imap_port), (server.host, server.pop3_port)] + ([(server.host, http)] if http
                                                                                  else [])
    try:
        link = Link(BASELINE, ends).start()
    except LinkError as exc:
        raise FleetError(f"the fleet's link to the server did not start: {exc}") from None
    try:
        return _run(server, (link.host, *link.ports, *([] if http else [0])), BASELINE, spec, the_plan, progress)
    finally:
        link.stop()


def _run(server, via: tuple[str, int, int, int], link: Profile | None, spec: FleetSpec, the_plan: Plan | None,
         progress) -> FleetResult:
    """:func:`run_fleet` with the devices connecting to ``via`` (host, IMAP port, POP3 port, JMAP port or 0),
    which is ``link`` in front of ``server`` (None: the server itself)."""
    p = the_plan or plan(spec)
    run = FleetRun(server, via[:3], link, spec, p, http_port=via[3])
    state = run.run(progress)
    result = FleetTally(spec, p, state, on_server(server, run.catalog), server).result()
    if any(prof.protocol == "pop3" for prof in state.profiles):
        result.fleet.update(probe_concurrent_pop3(server.host, server.pop3_port, server.account.user,
                                                  server.account.password))
    return result


__all__ = ["CLIENTS", "DAY_S", "JMAP_CLIENTS", "FleetError", "FleetResult", "FleetSpec", "Plan", "device_profile",
           "plan", "run_fleet"]
