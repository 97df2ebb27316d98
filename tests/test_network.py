"""The study's network conditions: TLS and loss by default, the clear-text loss-free control under one name
(mailstudy.study.network, and how ``mailstudy breakeven`` and the study's sweeps use it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailstudy.errors import MailstudyError
from mailstudy.link import PROFILES, Profile
from mailstudy.link.profiles import TRACED
from mailstudy.study.experiment import Experiment
from mailstudy.study.network import AS_GIVEN, CONTROL, LOSS, REALISTIC, ConditionsError, conditions
from mailstudy.study.parameters import ParameterError, check_parameters

ROOT = Path(__file__).resolve().parents[1]


def test_every_named_profile_has_a_study_loss_rate_with_its_source():
    assert set(LOSS) == set(PROFILES) | set(TRACED)
    for name, (rate, source) in LOSS.items():
        assert Profile("check", loss=rate).loss == rate  # a rate the link accepts: [0, 1)
        assert source and (rate == 0 or "assumption (ours)" in source), name
    assert LOSS["loopback"][0] == 0 and LOSS["edge"][0] > LOSS["4g"][0] > 0


def test_realistic_puts_tls_and_each_profiles_loss_and_keeps_the_name():
    e = REALISTIC.experiment(Experiment())
    assert (e.tls, e.tls_version) == ("implicit", "1.3")
    p = REALISTIC.profile("4g")
    assert isinstance(p, Profile) and p.name == "4g" and p.loss == LOSS["4g"][0]
    assert (p.rtt_s, p.down_bps, p.slow_start) == (PROFILES["4g"].rtt_s, PROFILES["4g"].down_bps, True)
    assert "assumption (ours)" in p.source
    assert REALISTIC.profile("lan") == "lan"  # no loss to add: a name stays a name (rows, cache keys)


def test_control_is_clear_text_without_loss_and_as_given_changes_nothing():
    e = Experiment(tls="starttls", tls_version="1.2")
    assert CONTROL.experiment(e).tls == "none" and CONTROL.profile("4g") == "4g"
    assert CONTROL.profile(REALISTIC.profile("edge")).loss == 0.0
    assert AS_GIVEN.experiment(e) == e
    lossy = Profile("x", rtt_s=0.01, loss=0.02)
    assert AS_GIVEN.profile(lossy) is lossy and REALISTIC.profile(lossy) is lossy  # not named: its own loss
    assert conditions(None) is REALISTIC and conditions("control") is CONTROL


def test_unknown_conditions_are_one_line_errors():
    with pytest.raises(ConditionsError, match="unknown network conditions 'wifi'; choose one of realistic") as err:
        conditions("wifi")
    assert isinstance(err.value, MailstudyError) and "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="NETWORK: unknown 'wifi'; choose from realistic, control"):
        check_parameters(NETWORK="wifi")
    check_parameters(NETWORK="control")


def _breakeven(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "breakeven", "--messages", "6", "--protocol",
                          "imap", "--profile", "satellite-geo", "--json", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    return json.loads(line)


def test_breakeven_runs_over_tls_with_loss_by_default_and_control_gives_the_old_numbers():
    default, control, spelled = _breakeven(), _breakeven("--control"), _breakeven("--tls", "none", "--loss", "0")
    assert (default["conditions"], default["tls"], default["tls_version"]) == ("realistic", "implicit", "1.3")
    assert default["loss"] == LOSS["satellite-geo"][0]
    assert (control["conditions"], control["tls"], control["loss"]) == ("control", "none", 0.0)
    assert spelled["conditions"] == "control"  # --tls none --loss 0 is the control, by name
    # the bytes are counted from real sessions: exact, and the same however the control is asked for
    assert control["bytes_download_all"] == spelled["bytes_download_all"]
    assert control["bytes_header_first_r0"] == spelled["bytes_header_first_r0"]
    # implicit TLS 1.3 costs the list at least its extra round trip (600 ms here) and its handshake's bytes
    assert default["list_wait_header_first_s"] - control["list_wait_header_first_s"] > 0.5
    assert default["bytes_header_first_r0"] > control["bytes_header_first_r0"]


def test_breakeven_refuses_a_bad_loss_rate_in_one_line():
    out = subprocess.run([sys.executable, "-m", "mailstudy.cli", "breakeven", "--loss", "150%"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "loss rate must be in [0, 1)" in out.stderr
