"""One validated parameter object (issue 15 item 3): each session value is checked by one rule with one message,
whether it reaches the engine through a SessionSpec, a SessionParams, an Experiment, a fleet or the read draw."""

from __future__ import annotations

import math

import pytest

from mailstudy.errors import MailstudyError
from mailstudy.live.access import SessionSpec, choose_opened
from mailstudy.live.fleet import FleetSpec
from mailstudy.live.params import SessionParams
from mailstudy.live.values import ParameterValueError
from mailstudy.study.experiment import Experiment
from mailstudy.study.fleet import FleetCell

MAKERS = {
    "SessionSpec": lambda **kw: SessionSpec(**kw),
    "SessionParams": lambda **kw: SessionParams(**kw),
    "client SessionParams": lambda **kw: SessionParams(workload="k9", **kw),
    "Experiment": lambda **kw: Experiment(**kw),
    "FleetSpec": lambda **kw: FleetSpec(**kw),
    "FleetCell": lambda **kw: FleetCell(**kw),
}


def message(make, **kw) -> str:
    with pytest.raises(ParameterValueError) as err:
        make(**kw)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MailstudyError)
    return str(err.value)


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf, "0.5", True])
def test_a_bad_read_fraction_gets_one_message_everywhere(bad):
    messages = {name: message(make, read_fraction=bad) for name, make in MAKERS.items()}
    messages["choose_opened"] = message(lambda **kw: choose_opened(10, kw["read_fraction"], 0), read_fraction=bad)
    assert len(set(messages.values())) == 1, messages
    assert messages["SessionSpec"] == f"read_fraction must be within [0, 1], not {bad}"


def test_an_unknown_size_preset_or_client_gets_one_message_everywhere():
    sizes = {name: message(MAKERS[name], sizes="huge") for name in ("SessionParams", "Experiment", "FleetSpec")}
    assert len(set(sizes.values())) == 1 and "unknown size preset 'huge'" in sizes["Experiment"]
    clients = {message(SessionParams, workload="outlook"), message(FleetSpec, clients=("outlook",))}
    assert len(clients) == 1 and "unknown client profile 'outlook'" in clients.pop()


@pytest.mark.parametrize("kw", [{"hours": math.nan}, {"hours": math.inf}, {"rate": math.nan}, {"rate": math.inf},
                                {"poll_s": math.nan}, {"devices": 1.5}])
def test_a_fleet_refuses_what_would_never_end(kw):
    assert message(FleetSpec, **kw)


def test_a_client_workload_brings_its_own_protocol():
    assert SessionParams(workload="k9-pop3").protocol == "pop3"
    assert SessionParams(workload="thunderbird", protocol="pop3").protocol == "imap"
    assert SessionParams(workload="download-all", protocol="pop3").spec().strategy == "download-all"
    assert Experiment(protocol="pop3", strategy="download-all").spec() == SessionParams(
        protocol="pop3", workload="download-all").spec()
    with pytest.raises(ParameterValueError, match="strategy must be one of"):
        Experiment(strategy="k9")  # an experiment cell runs a strategy; client profiles run in fleets
