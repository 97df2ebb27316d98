"""STARTTLS and STLS sessions open with a TLS key log: the plain start as captured, the rest decrypted.

A real session on Dovecot (plain port, STARTTLS/STLS, TLS 1.3), captured by tcpdump while Python's ``ssl``
writes the key log. Without the key log the analysis counts what follows the upgrade; with it
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


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """(pcap, keylog, {protocol: server port}) of one IMAP STARTTLS and one POP3 STLS session."""
    folder = tmp_path_factory.mktemp("starttls")
    pcap, keylog = folder / "starttls.pcap", folder / "starttls.keylog"
    server = DovecotServer([Account(USER, PASSWORD)], {USER: generate(2, "fixed-5k", 1).raws()}, tls=True)
    with server:
        ports = {"imap": server.imap_port, "pop3": server.pop3_port}
        ctx = ssl.create_default_context(cafile=server.tls_ca)
        ctx.keylog_filename = str(keylog)
        with Capture(pcap, list(ports.values()), backend="tcpdump", host=server.host):
            c = imaplib.IMAP4(server.host, ports["imap"], timeout=30)
            c.starttls(ssl_context=ctx)
            c.login(USER, PASSWORD)
            c.select("INBOX")
            c.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])")
            c.uid("FETCH", "1", "(BODY[])")
            c.logout()
            p = poplib.POP3(server.host, ports["pop3"], timeout=30)
            p.stls(context=ctx)
            p.user(USER)
            p.pass_(PASSWORD)
            p.stat()
            p.retr(1)
            p.quit()
    return pcap, keylog, ports


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
    pcap, _keylog, _ports = captured
    analysis = analyze_pcap(pcap)
    assert sorted(s.protocol for s in analysis.sessions) == ["imap", "pop3"]
    for s in analysis.sessions:
        assert s.encrypted and any(isinstance(e, Encrypted) for e in s.events)
        assert [e.command for e in s.exchanges][-1] in ("STARTTLS", "STLS")


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_key_log_opens_the_rest_as_tshark_does(captured, protocol):
    pcap, keylog, ports = captured
    analysis = add_decrypted_sessions(analyze_pcap(pcap), keylog)
    (s,) = [x for x in analysis.sessions if x.protocol == protocol]
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
