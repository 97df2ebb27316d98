"""The example captures: they can be rebuilt (with or without capture privileges), each one analyzes into the
session it claims to be, the committed ones match captures/README.md, and the IMAPS key log decrypts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import needs

from mailstudy.offline.analyze import analyze_pcap
from mailstudy.faces.examples import EXAMPLES, make_examples, tshark_decrypts

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
PLAIN = {ex.name: ex for ex in EXAMPLES}
PASSWORD = b"wonderland-42"  # the default throwaway account's password


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    out = make_examples(folder, server="embedded", backend="auto")
    return folder, out


def test_make_examples_makes_every_file(made):
    folder, out = made
    names = {r["name"] for r in out["made"]}
    assert set(PLAIN) <= names
    for r in out["made"]:
        pcap = folder / r["pcap"]
        assert pcap.stat().st_size < 200_000, f"{pcap.name} is too big for the repository"
        assert (folder / r["ladder"]).read_bytes()[:4] == b"\x89PNG"
        side = json.loads((folder / f"{r['pcap']}.json").read_text())
        assert side["backend"] == r["backend"] and side["redaction"]
        assert side["complete"] is True
    readme = (folder / "README.md").read_text()
    for r in out["made"]:
        assert f"({r['pcap']})" in readme and f"({r['ladder']})" in readme
    for name, why in out["skipped"].items():
        assert why in readme


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_each_plain_example_is_the_session_it_claims(made, name):
    folder, out = made
    rec = next(r for r in out["made"] if r["name"] == name)
    analysis = analyze_pcap(folder / rec["pcap"])
    (session,) = analysis.sessions
    exp = PLAIN[name].experiment
    assert session.protocol == exp.protocol
    assert session.metrics["commands"] > 0
    assert session.metrics["commands"] == rec["commands"]
    assert session.metrics["exchanges_failed"] == 0
    # The capture's payload each way is what the client's socket saw (the sidecar's check), and the parser's
    # count agrees with it.
    side = json.loads((folder / f"{rec['pcap']}.json").read_text())
    assert session.metrics["bytes_up"] == side["bytes_up"]
    assert session.metrics["bytes_down"] == side["bytes_down"]
    commands = [e.command for e in session.exchanges]
    if name == "pop3-delete":
        assert commands.count("DELE") == exp.messages and commands[-1] == "QUIT"
    if name == "pop3-keep":
        assert "DELE" not in commands and commands.count("RETR") == exp.messages
    if name == "imap-header-first":
        bodies = [e for e in session.exchanges if e.arguments.endswith("(BODY[])")]
        assert len(bodies) == round(exp.read_fraction * exp.messages)
    if name == "pop3-pipelined":
        # The six TOP commands leave in one segment: one up chunk holds them all.
        tops = b"".join(f"TOP {i} 0\r\n".encode() for i in range(1, exp.messages + 1))
        assert any(c.direction == "up" and c.data == tops for c in session.connection.chunks)
        assert session.metrics["round_trips"] < session.metrics["commands"]


def test_example_pcaps_carry_no_password_once_redacted(made):
    folder, out = made
    for r in out["made"]:
        if r["name"] != "imaps":
            assert PASSWORD not in (folder / r["pcap"]).read_bytes(), r["pcap"]


def test_imaps_keylog_decrypts_with_tshark(made):
    needs.tshark()
    folder, out = made
    if "imaps" in out["skipped"]:
        pytest.skip(f"the IMAPS example was not made here: {out['skipped']['imaps']}")
    rec = next(r for r in out["made"] if r["name"] == "imaps")
    raw = (folder / "imaps.pcap").read_bytes()
    assert b"LOGIN" not in raw and b"FETCH" not in raw  # really encrypted on the wire
    lines = tshark_decrypts(folder / "imaps.pcap", folder / "imaps.keylog", rec["port"])
    assert any(" LOGIN student " in ln for ln in lines)
    assert any("UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])" in ln for ln in lines)
    assert any("LOGOUT" in ln for ln in lines)
    # Without the key log tshark sees no IMAP at all.
    out2 = subprocess.run(["tshark", "-r", str(folder / "imaps.pcap"), "-d", f"tcp.port=={rec['port']},tls",
                           "-Y", "imap"], capture_output=True, text=True, timeout=60)
    assert out2.stdout.strip() == ""


def test_without_capture_privileges_examples_fall_back_to_rebuilt(tmp_path):
    """Run the script with CAP_NET_RAW dropped (as an unprivileged user would be): every plain example is a
    pcap rebuilt from the socket trace, and the IMAPS example is skipped with the reason."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_RAW for this test")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    cmd = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", sys.executable, "-m",
           "mailstudy.faces.examples", "--folder", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    if out.returncode != 0 and "setpriv" in out.stderr:
        pytest.skip(f"cannot drop capabilities here: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stderr
    for name in PLAIN:
        side = json.loads((tmp_path / f"{name}.pcap.json").read_text())
        assert side["backend"] == "rebuilt" and side["rebuilt"] is True and side["complete"] is True
        (session,) = analyze_pcap(tmp_path / f"{name}.pcap").sessions
        assert session.protocol == PLAIN[name].experiment.protocol and session.metrics["commands"] > 0
    assert "imaps: skipped" in out.stderr and "tcpdump" in out.stderr
    assert not (tmp_path / "imaps.pcap").exists()


# ---- the committed captures ----------------------------------------------------------------------------------
def _listed() -> list[str]:
    readme = CAPTURES / "README.md"
    if not readme.exists():
        pytest.fail("captures/README.md is missing: run `python -m mailstudy.faces.examples`")
    return sorted(set(re.findall(r"\]\(([\w.-]+\.(?:pcap|png|keylog))\)", readme.read_text())))


def test_committed_captures_match_their_readme():
    listed = _listed()
    assert listed, "captures/README.md lists no files"
    for name in listed:
        assert (CAPTURES / name).exists(), f"captures/README.md lists {name}, which is not in captures/"
    pcaps = [n for n in listed if n.endswith(".pcap")]
    assert {f"{n}.pcap" for n in PLAIN} <= set(pcaps)
    for name in pcaps:
        assert (CAPTURES / name).stat().st_size < 200_000, f"{name} is too big"
        side = json.loads((CAPTURES / f"{name}.json").read_text())
        assert side["backend"] in ("tcpdump", "scapy", "rebuilt"), name
        assert side.get("redaction"), f"{name}.json does not say how it was redacted"
    on_disk = {p.name for p in CAPTURES.glob("*.pcap")}
    assert on_disk == set(pcaps), f"pcaps not in the README: {sorted(on_disk - set(pcaps))}"


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_committed_plain_captures_analyze(name):
    path = CAPTURES / f"{name}.pcap"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python -m mailstudy.faces.examples`")
    (session,) = analyze_pcap(path).sessions
    assert session.protocol == PLAIN[name].experiment.protocol
    assert session.metrics["commands"] > 0
    side = json.loads((CAPTURES / f"{name}.pcap.json").read_text())
    assert (session.metrics["bytes_up"], session.metrics["bytes_down"]) == (side["bytes_up"], side["bytes_down"])


def test_committed_imaps_keylog_decrypts():
    needs.tshark()
    if not (CAPTURES / "imaps.pcap").exists():
        pytest.skip("no committed IMAPS example (it needs Dovecot and tcpdump where it was made)")
    port = json.loads((CAPTURES / "imaps.pcap.json").read_text())["ports"][0]
    lines = tshark_decrypts(CAPTURES / "imaps.pcap", CAPTURES / "imaps.keylog", port)
    assert any(" LOGIN " in ln for ln in lines) and any("LOGOUT" in ln for ln in lines)


def test_readme_tshark_lines_show_the_commands():
    """The tshark command the README gives for each plain capture really dissects it."""
    needs.tshark()
    text = (CAPTURES / "README.md").read_text()
    commands = re.findall(r"`(tshark -r captures/([\w.-]+\.pcap) -d tcp\.port==\d+,(?:imap|pop) -Y (?:imap|pop))`",
                          text)
    assert {name for _, name in commands} == {f"{n}.pcap" for n in PLAIN}
    for line, name in commands:
        out = subprocess.run(line.split(), capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        want = {"pop3-keep.pcap": "RETR", "pop3-delete.pcap": "DELE", "pop3-pipelined.pcap": "TOP"}.get(name,
                                                                                                         "FETCH")
        assert want in out.stdout, f"{line}: no {want} in tshark's output"
