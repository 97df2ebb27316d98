"""STARTTLS and STLS sessions open with a TLS key log (TLS 1.3 and 1.2): the plain start as captured, the rest
decrypted; and TLS 1.2 key logs (``CLIENT_RANDOM``) open IMAPS too.

Real sessions on Dovecot (plain port with STARTTLS/STLS, and the IMAPS port), captured by tcpdump while
Python's ``ssl`` writes the key log; the client caps the version at TLS 1.2 for the 1.2 captures. Without the key log the analysis counts what follows the upgrade; with it
(:func:`mailstudy.offline.decrypt.add_decrypted_sessions`) every command after STARTTLS is read, and the list
of commands equals the one tshark shows when it decrypts the same capture with the same key log (the
independent oracle).
"""

from __future__ import annotations

import imaplib
import poplib
import shutil
import ssl
import subprocess

import pytest

from mailstudy.capture import Capture
from mailstudy.corpus import generate
from mailstudy.offline.analyze import analyze_pcap
from mailstudy.offline.decrypt import add_decrypted_sessions
from mailstudy.protocol.events import Encrypted
from mailstudy.servers.base import Account
from mailstudy.servers.dovecot import DovecotServer, dovecot_available

USER, PASSWORD = "tlsuser", "throwaway-starttls"

pytestmark = pytest.mark.skipif(bool(dovecot_available()) or not shutil.which("tcpdump") or not shutil.which("tshark"),
                                reason="needs Dovecot, tcpdump and tshark (the oracle)")


@pytest.fixture(scope="module", params=["1.3", "1.2"])
def captured(request, tmp_path_factory):
    """(pcap, keylog, {protocol: server port}, version) of an IMAP STARTTLS, a POP3 STLS and an IMAPS session."""
    version = request.param
    folder = tmp_path_factory.mktemp("starttls")
    pcap, keylog = folder / "starttls.pcap", folder / "starttls.keylog"
    server = DovecotServer([Account(USER, PASSWORD)], {USER: generate(2, "fixed-5k", 1).raws()}, tls=True)
    with server:
        ports = {"imap": server.imap_port, "pop3": server.pop3_port, "imaps": server.imaps_port}
        ctx = ssl.create_default_context(cafile=server.tls_ca)
        if version == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.keylog_filename = str(keylog)
        with Capture(pcap, list(ports.values()), backend="tcpdump", host=server.host):
            c = imaplib.IMAP4(server.host, ports["imap"], timeout=30)
            c.starttls(ssl_context=ctx)
            _imap_session(c)
            p = poplib.POP3(server.host, ports["pop3"], timeout=30)
            p.stls(context=ctx)
            p.user(USER)
            p.pass_(PASSWORD)
            p.stat()
            p.retr(1)
            p.quit()
            _imap_session(imaplib.IMAP4_SSL(server.host, ports["imaps"], ssl_context=ctx, timeout=30))
    return pcap, keylog, ports, version


def _imap_session(c) -> None:
    c.login(USER, PASSWORD)
    c.select("INBOX")
    c.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])")
    c.uid("FETCH", "1", "(BODY[])")
    c.logout()


def _tshark(pcap, keylog, port: int, protocol: str) -> list[str]:
    """The client's commands as tshark shows them once it decrypts the capture with the key log."""
    dissector, fields = ("imap", ["imap.request"]) if protocol == "imap" else ("pop", ["pop.request.command",
                                                                                      "pop.request.parameter"])
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-d",
                          f"tcp.port=={port},{dissector}", "-Y", fields[0], "-T", "fields", "-E", "separator=/s",
                          *[x for f in fields for x in ("-e", f)]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-300:]
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _ours(s) -> list[str]:
    return [" ".join(p for p in (e.tag, e.command, e.arguments) if p) for e in s.exchanges]


def test_without_the_key_log_only_the_start_is_read(captured):
    pcap, _keylog, ports, _version = captured
    analysis = analyze_pcap(pcap)
    assert sorted(s.protocol for s in analysis.sessions) == ["imap", "pop3"]  # IMAPS is not mail without it
    for s in analysis.sessions:
        assert s.encrypted and any(isinstance(e, Encrypted) for e in s.events)
        assert [e.command for e in s.exchanges][-1] in ("STARTTLS", "STLS")


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_key_log_opens_starttls_as_tshark_does(captured, protocol):
    pcap, keylog, ports, version = captured
    analysis = add_decrypted_sessions(analyze_pcap(pcap), keylog)
    (s,) = [x for x in analysis.sessions if x.protocol == protocol and x.port == ports[protocol]]
    assert s.decrypted and s.encrypted and "before STARTTLS and inside TLS after it" in s.warnings[0]
    commands = [e.command for e in s.exchanges]
    upgrade = "STARTTLS" if protocol == "imap" else "STLS"
    assert upgrade in commands and commands.index(upgrade) < len(commands) - 3  # it reads on after the upgrade
    assert commands[-1] in ("LOGOUT", "QUIT") and all(e.status in ("OK", "+OK") for e in s.exchanges)
    marks = [e for e in s.events if isinstance(e, Encrypted)]
    assert len(marks) == 1 and "plaintext inside TLS" in marks[0].reason  # "encrypted from here"
    theirs = _tshark(pcap, keylog, ports[protocol], protocol)
    ours = _ours(s)
    assert ours == theirs and len(ours) >= 6  # LOGIN/PASS included: the key log reveals them (explorer masks)
    retr = next(e for e in s.exchanges if e.command in ("UID FETCH", "RETR") and e.bytes_down > 5120)
    assert retr.bytes_down > 5120  # the whole message, read inside TLS
    assert not any("not decrypted" in w for w in analysis.warnings), version


def test_the_key_log_opens_imaps_as_tshark_does(captured):
    """TLS from the first byte; with a TLS 1.2 key log that is ``CLIENT_RANDOM`` lines (master secrets)."""
    pcap, keylog, ports, version = captured
    lines = keylog.read_text().split()
    assert ("CLIENT_RANDOM" in lines) == (version == "1.2")
    analysis = add_decrypted_sessions(analyze_pcap(pcap), keylog)
    (s,) = [x for x in analysis.sessions if x.port == ports["imaps"]]
    assert s.decrypted and "inside TLS (" in s.warnings[0]
    ours = _ours(s)
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-d",
                          f"tcp.port=={ports['imaps']},tls", "-d", f"tls.port=={ports['imaps']},imap", "-Y",
                          "imap.request", "-T", "fields", "-e", "imap.request"],
                         capture_output=True, text=True, timeout=120)
    theirs = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    assert ours == theirs
    assert [e.command for e in s.exchanges] == ["CAPABILITY", "LOGIN", "SELECT", "UID FETCH", "UID FETCH", "LOGOUT"]
