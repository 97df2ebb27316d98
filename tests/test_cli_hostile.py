"""Every subcommand given bad values of every kind: one line, exit 2, no traceback, no hang, no password.

Each case runs the command line as a user does (a subprocess with a timeout, so a hang fails the test instead of
stopping the suite). Numbers: NaN, infinities, negatives, huge values, wrong types; paths: a missing file, a
folder, /dev/null, a FIFO, /etc/passwd where a folder is wanted. The ranges themselves live in
:mod:`mailstudy.cli.values` (one place); here each range's edges are pinned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_run import run

from mailstudy.cli import values
from mailstudy.servers.base import DEFAULT_ACCOUNT

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "captures" / "pop3-keep.pcap"
PASSWORD = DEFAULT_ACCOUNT.password
TIMEOUT = 90  # seconds; every case here is refused before any server starts

NUMBERS = ("nan", "inf", "-inf", "-1", "1e400", "99999999999999999999999", "abc", "")
DURATIONS = ("nans", "infs", "-5ms", "1e9s", "80", "abc", "")
RATES = ("1bit", "0mbit", "-1mbit", "1e30gbit", "10", "abc", "")

# (subcommand and its positional arguments, option, bad values)
NUMERIC = [
    (["session"], "--messages", NUMBERS), (["session"], "--seed", NUMBERS),
    (["session"], "--read-fraction", NUMBERS + ("1.5",)), (["session"], "--preview", NUMBERS),
    (["session"], "--max-mailbox-gb", NUMBERS + ("0",)),
    (["session"], "--rtt", DURATIONS), (["session"], "--jitter", DURATIONS),
    (["session"], "--down", RATES), (["session"], "--up", RATES),
    (["serve"], "--messages", NUMBERS), (["serve"], "--seed", NUMBERS), (["serve"], "--max-mailbox-gb", NUMBERS),
    (["serve"], "--imap-port", NUMBERS + ("0", "70000")), (["serve"], "--pop3-port", NUMBERS + ("0",)),
    (["analyze", CAPTURE], "--port", NUMBERS + ("0", "70000")),
    (["replay", CAPTURE], "--session", NUMBERS), (["replay", CAPTURE], "--timeout", NUMBERS + ("0",)),
    (["fleet"], "--devices", NUMBERS + ("0", "100000000")), (["fleet"], "--hours", NUMBERS + ("0", "1e12")),
    (["fleet"], "--rate", NUMBERS + ("1e12",)), (["fleet"], "--start", NUMBERS + ("100000000",)),
    (["fleet"], "--poll", NUMBERS + ("0", "0s", "1e9d")), (["fleet"], "--read-fraction", NUMBERS + ("1.5",)),
    (["fleet"], "--seed", NUMBERS), (["fleet"], "--lose", ("nan@nan", "-1@3", "0@1e300", "5@3", "0@100", "x")),
    (["fleet"], "--rtt", DURATIONS), (["fleet"], "--max-mailbox-gb", NUMBERS + ("0",)),
    (["breakeven"], "--messages", NUMBERS + ("100000000",)), (["breakeven"], "--seed", NUMBERS),
    (["breakeven"], "--rtt", DURATIONS), (["breakeven"], "--down", RATES), (["breakeven"], "--up", RATES),
    (["breakeven"], "--jitter", DURATIONS),
    (["claims"], "--seed", NUMBERS),
    (["energy", "--session"], "--messages", NUMBERS), (["energy", "--session"], "--seed", NUMBERS),
    (["energy", "--session"], "--read-fraction", NUMBERS + ("1.5",)),
    (["energy", "--fleet"], "--devices", NUMBERS + ("0", "100000000")),
    (["energy", "--fleet"], "--hours", NUMBERS + ("0", "1e12")), (["energy", "--fleet"], "--rate", NUMBERS + ("1e12",)),
    (["energy", "--fleet"], "--poll", NUMBERS + ("0", "0s", "1e9d")),
    (["calibrate"], "--messages", NUMBERS), (["calibrate"], "--seed", NUMBERS),
    (["calibrate"], "--timeout", NUMBERS + ("0",)), (["calibrate"], "--repeats", NUMBERS + ("0",)),
    (["explore"], "--port", NUMBERS + ("70000",)),
]
NUMERIC_CASES = [pytest.param(head, opt, v, id=f"{head[0]} {opt} {v!r}") for head, opt, vs in NUMERIC for v in vs]


def refused(out, *needles: str) -> None:
    """One line on stderr, exit 2, no traceback, nothing on stdout, and no password anywhere."""
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert out.stdout == "", out.stdout
    assert PASSWORD not in out.stderr + out.stdout
    for needle in needles:
        assert needle in out.stderr, out.stderr


def _argv(head, option, value) -> list[str]:
    if option == "--lose" and value == "0@100":  # within a 744 h cap, outside the 24 h period asked for
        return [*map(str, head), "--hours", "24", option, value]
    if option == "--rtt" and head == ["fleet"]:  # fleet takes a profile name only: an unknown option
        return [*map(str, head), option, value or "x"]
    return [*map(str, head), f"{option}={value}"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("head,option,value", NUMERIC_CASES)
def test_a_bad_number_is_refused_in_one_line(capsys, head, option, value):
    """In this process (hundreds of cases; a hang is caught by the timeout, a traceback fails the test)."""
    from mailstudy.cli.commands import main

    status = main(_argv(head, option, value))
    out = capsys.readouterr()
    refused(subprocess.CompletedProcess([], status, out.out, out.err), NEEDLE.get((head[0], option, value), option))


@pytest.mark.parametrize("head,option,values", NUMERIC, ids=[f"{h[0]} {o}" for h, o, _ in NUMERIC])
def test_a_bad_number_is_refused_as_a_user_runs_it(head, option, values):
    """The first bad value of each option again, as a user runs it: a process of its own with a timeout."""
    refused(run(*_argv(head, option, values[0]), timeout=TIMEOUT), NEEDLE.get((head[0], option, values[0]), option))


#: What the one line names when it is not the option itself.
NEEDLE = {("breakeven", "--messages", "100000000"): "--max-mailbox-gb", ("fleet", "--lose", "5@3"): "lose",
          ("fleet", "--lose", "0@100"): "lose",
          **{("explore", "--port", v): "port" for v in NUMBERS + ("70000",)}}


def test_every_subcommand_has_a_bad_number_case():
    """A new subcommand with a numeric option gets a case here (profiles, study and redact take none)."""
    from mailstudy.cli.commands import COMMANDS

    covered = {head[0] for head, _, _ in NUMERIC}
    assert set(COMMANDS) - covered == {"profiles", "study", "redact"}


@pytest.mark.parametrize("name", sorted(values.LIMITS))
def test_each_range_keeps_its_edges_and_refuses_just_beyond(name):
    limit = values.LIMITS[name]
    parse = values.ranged(name)
    assert parse(repr(float(limit.high))) == limit.high
    with pytest.raises(argparse.ArgumentTypeError):
        parse(repr(float(limit.high) * 1.001 + 1))
    if limit.low_open:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(repr(float(limit.low)))
    else:
        assert parse(repr(float(limit.low))) == limit.low
    for text in ("nan", "inf", "-inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_the_link_options_use_the_link_layers_own_parser():
    assert values.rtt("80ms") == "80ms" and values.bandwidth("10mbit") == "10mbit"
    with pytest.raises(argparse.ArgumentTypeError, match="accepted"):
        values.rtt("80")  # the link layer's message, with the forms it accepts


@pytest.fixture
def hostile(tmp_path):
    """A folder, a FIFO and a plain file to hand where something else is wanted."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"missing": tmp_path / "missing.pcap", "folder": folder, "fifo": fifo, "devnull": Path("/dev/null"),
            "passwd": Path("/etc/passwd"), "nofolder": tmp_path / "nope" / "x.pcap"}


PATH_CASES = [
    # (argv with {kind} for the hostile path, kinds, a word the message must hold)
    (["analyze", "{p}"], ("missing", "folder", "devnull", "fifo"), ""),
    (["replay", "{p}"], ("missing", "folder", "devnull", "fifo"), ""),
    (["redact", "{p}", "{tmp}/out.pcap"], ("missing", "folder", "devnull", "fifo"), ""),
    (["redact", str(CAPTURE), "{p}"], ("folder", "devnull", "fifo", "nofolder"), ""),
    (["session", "--mailbox", "{p}"], ("missing", "folder", "devnull", "fifo"), ""),
    (["serve", "--mailbox", "{p}"], ("missing", "devnull", "fifo"), ""),
    (["session", "--capture", "{p}"], ("folder", "devnull", "fifo", "nofolder"), "capture"),
    (["fleet", "--cache-dir", "{p}"], ("passwd", "devnull", "fifo"), "--cache-dir"),
    (["study", "--build", "{p}"], ("passwd", "devnull", "fifo"), "--build"),
    (["explore", "--notebook", "{p}"], ("missing", "folder", "devnull", "fifo"), ""),
]


@pytest.mark.parametrize("argv,kinds,needle", PATH_CASES, ids=[" ".join(c[0][:2]) for c in PATH_CASES])
def test_a_bad_path_is_refused_in_one_line(hostile, tmp_path, argv, kinds, needle):
    for kind in kinds:
        args = [a.format(p=hostile[kind], tmp=tmp_path) for a in argv]
        out = run(*args, timeout=TIMEOUT)
        refused(out, needle)
    assert hostile["fifo"].exists() and not hostile["fifo"].is_file()  # left as it was
    assert Path("/etc/passwd").is_file() and Path("/dev/null").is_char_device()


@pytest.mark.parametrize("args, needle", [(("--behaviour", "push"), "--behaviour"),
                                          (("--behaviour", ""), "--behaviour"),
                                          (("--behaviour", "profile", "--idle"), "idle is for the poll behaviour")])
def test_a_fleet_behaviour_that_is_not_one_is_refused_before_it_starts(args, needle):
    refused(run("fleet", *args, timeout=TIMEOUT), needle)


def test_the_fleet_refuses_a_file_as_cache_folder_before_it_simulates(tmp_path):
    """``/proc/nope`` cannot be made; a file is not a folder: both refused at once, nothing simulated."""
    for bad in ("/proc/nope", "/etc/passwd"):
        out = run("fleet", "--cache-dir", bad, "--hours", "744", timeout=TIMEOUT)  # a month would take long
        refused(out, "--cache-dir")


def test_a_fleet_whose_mail_would_not_fit_is_refused_before_it_starts():
    """The start plus the expected arrivals, estimated as `session` estimates a mailbox."""
    refused(run("fleet", "--rate", "10000", "--hours", "744", timeout=TIMEOUT), "--max-mailbox-gb")
    refused(run("fleet", "--start", "100000", timeout=TIMEOUT), "--max-mailbox-gb")


def test_options_that_do_nothing_are_errors(tmp_path):
    refused(run("session", "--capture-backend", "rebuilt", timeout=TIMEOUT), "--capture-backend", "--capture")
    refused(run("session", "--force", timeout=TIMEOUT), "--force")
    for extra in (["--capture", tmp_path / "c.pcap"], ["--strategy", "download-all"], ["--profile", "4g"],
                  ["--rtt", "80ms"], ["--preview", "10"], ["--pipelining"]):
        refused(run("session", "--client", "thunderbird", *extra, timeout=TIMEOUT), extra[0], "--client")
    assert not (tmp_path / "c.pcap").exists()


def test_session_capture_never_replaces_a_file_without_force(tmp_path):
    pcap = tmp_path / "s.pcap"
    pcap.write_bytes(b"mine")
    refused(run("session", "--messages", "3", "--capture", pcap, "--capture-backend", "rebuilt", timeout=TIMEOUT),
            "--force")
    assert pcap.read_bytes() == b"mine"
    pcap.unlink()
    sidecar = tmp_path / "s.pcap.json"
    sidecar.write_text("{}")  # the sidecar alone is protected as well
    refused(run("session", "--messages", "3", "--capture", pcap, "--capture-backend", "rebuilt", timeout=TIMEOUT),
            "--force")
    assert sidecar.read_text() == "{}" and not pcap.exists()
    out = run("session", "--messages", "3", "--capture", pcap, "--capture-backend", "rebuilt", "--force",
              timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    from mailstudy.net.pcap import read_tcp

    assert pcap.read_bytes() != b"mine" and list(read_tcp(pcap))  # a capture took its place
    assert json.loads(sidecar.read_text())


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_no_password_in_any_output_format_of_a_session(protocol):
    for extra in ([], ["--json"], ["--exchanges"], ["--json", "--exchanges"]):
        out = run("session", "--protocol", protocol, "--messages", "3", *extra, timeout=TIMEOUT)
        assert out.returncode == 0, out.stderr
        assert PASSWORD not in out.stdout + out.stderr, extra
        if "--exchanges" in extra:
            assert "***" in out.stdout  # the login is listed, its credentials overwritten
    plain = json.loads(run("session", "--protocol", protocol, "--messages", "3", "--json").stdout)
    assert "exchanges" not in plain  # listed only when asked
    listed = json.loads(run("session", "--protocol", protocol, "--messages", "3", "--json", "--exchanges").stdout)
    assert len(listed["exchanges"]) == listed["commands"]


@pytest.mark.parametrize("client", ["thunderbird", "k9-pop3"])
def test_no_password_in_any_output_format_of_a_client_profile(client):
    for extra in ([], ["--json"], ["--exchanges"], ["--json", "--exchanges"]):
        out = run("session", "--client", client, "--messages", "4", *extra, timeout=TIMEOUT)
        assert out.returncode == 0, out.stderr
        assert PASSWORD not in out.stdout + out.stderr, extra
        assert DEFAULT_ACCOUNT.user not in out.stdout or "***" in out.stdout
    phases = json.loads(run("session", "--client", client, "--messages", "4", "--json").stdout)
    assert phases and all("exchanges" not in p for p in phases)  # listed only with --exchanges
    phases = json.loads(run("session", "--client", client, "--messages", "4", "--json", "--exchanges").stdout)
    assert all(len(p["exchanges"]) == p["commands"] for p in phases)


def test_a_closed_pipe_ends_quietly(tmp_path):
    """``mailstudy ... | head -1``: the reader goes away; no BrokenPipeError traceback, exit 128 + SIGPIPE."""
    from cli_run import CLI

    proc = subprocess.Popen([*CLI, "session", "--messages", "3", "--exchanges"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # read nothing: the first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(TIMEOUT) == 141, err
    assert "Traceback" not in err


DAMAGE = {"empty list": b"[]", "object": b"{}", "null": b"null", "string": b'"abc"', "bad UTF-8": b"\xff\xfe[",
          "half a file": b'[{"row": "fleet", "devices": 1', "a list of nothing": b"[{}]", "a list of numbers": b"[1]"}


def test_a_damaged_cache_cell_is_run_again(tmp_path):
    """``sweep()`` promises that a damaged cell is simply run again (and its file replaced), whatever the damage."""
    cache = tmp_path / "cache"
    argv = ("fleet", "--devices", "1", "--hours", "1", "--rate", "0", "--poll", "30m", "--cache-dir", cache,
            "--json")
    first = run(*argv, timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr
    (cell,) = cache.glob("*.json")
    good = json.loads(cell.read_text())
    counts = {k: json.loads(first.stdout)["fleet"][k] for k in ("sessions", "bytes_up", "bytes_down", "commands")}
    for what, damage in DAMAGE.items():
        cell.write_bytes(damage)
        again = run(*argv, timeout=TIMEOUT)
        assert again.returncode == 0 and "Traceback" not in again.stderr, (what, again.stderr[-2000:])
        assert {k: json.loads(again.stdout)["fleet"][k] for k in counts} == counts, what
        assert len(json.loads(cell.read_text())) == len(good), what  # run again and written whole


def test_every_error_class_of_the_package_derives_from_mailstudy_error():
    """The command line catches MailstudyError once; an error class outside it would reach a user as a traceback."""
    import ast
    import importlib

    from mailstudy.errors import MailstudyError

    package = REPO / "mailstudy"
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Failed")):
                parts = path.relative_to(REPO).with_suffix("").parts
                module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                found.append((module, node.name))
    assert len(found) >= 18
    outside = [f"{m}.{n}" for m, n in found if not issubclass(getattr(importlib.import_module(m), n), MailstudyError)]
    assert outside == []


def test_every_client_profile_runs_with_exchanges_and_no_other_option():
    """The README's `session --client thunderbird --exchanges`, for every profile: exit 0, no password."""
    from mailstudy.live.client_profiles import CLIENTS

    for client in CLIENTS:
        out = run("session", "--client", client, "--exchanges", timeout=300)
        assert out.returncode == 0, (client, out.stderr[-2000:])
        assert PASSWORD not in out.stdout + out.stderr, client
        assert out.stdout.count(f"{client}, ") == 2, client  # its first and its next sync
