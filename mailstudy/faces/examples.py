"""Make the example captures in ``captures/``: small, real IMAP and POP3 sessions for students to open.

Why: "what actually crosses the wire when a mail client syncs?" is best answered with a capture in Wireshark.
This script records one small session of each kind the study compares (IMAP header-first and download-all,
POP3 keep and delete, a pipelined POP3 session) plus an IMAPS session with its TLS key log, writes a ladder
diagram beside each pcap and a ``README.md`` table of what each file shows, so the folder never disagrees with
the files in it. ``python -m mailstudy.faces.examples`` rebuilds them all.

How each file is made:

- Plain sessions: :func:`mailstudy.study.experiment.run_captured_session` with the default (throwaway) account
  ``alice``/``wonderland-42``; capture backend ``auto`` (tcpdump where permitted, else scapy, else a pcap
  *rebuilt* from the socket trace, which needs no privileges; the sidecar says which). The pcaps are then
  redacted with :func:`mailstudy.offline.redact.redact_pcap`, which must find the login's credentials (a
  session that logs in and yields nothing to redact is an error, not a silent pass).
- IMAPS: Dovecot with TLS (``DovecotServer(tls=True)``: its ``imaps`` listener on a free loopback port and the
  self-signed certificate it makes with the ``openssl`` CLI, :mod:`mailstudy.servers.tls`); the client is
  ``imaplib.IMAP4_SSL`` with an ``ssl.SSLContext`` that verifies that certificate and whose ``keylog_filename``
  writes ``imaps.keylog``; captured
  with tcpdump (the only backend that can: a rebuilt pcap needs the plain socket trace, which TLS hides). It
  uses its own throwaway account, because the key log decrypts the LOGIN for anyone who has both files.
  Without Dovecot, tcpdump or openssl this example is skipped and the reason is returned and printed.
"""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mailstudy.outputs import write_atomically
from mailstudy.study.experiment import Experiment, run_captured_session

__all__ = ["EXAMPLES", "Example", "make_examples", "make_imaps_example", "tshark_decrypts", "main"]

IMAPS_ACCOUNT = ("student", "throwaway-not-a-secret")  # only ever used for the IMAPS example


@dataclass(frozen=True)
class Example:
    name: str  # file stem in captures/
    experiment: Experiment
    shows: str
    look_for: str


_SMALL = dict(messages=6, sizes="fixed-5k", seed=1)

EXAMPLES: tuple[Example, ...] = (
    Example("imap-header-first",
            Experiment(protocol="imap", strategy="header-first", read_fraction=0.4, **_SMALL),
            "IMAP header-first: CAPABILITY, LOGIN, SELECT, one UID FETCH of every header, then the bodies of the "
            "2 messages the user opens (read fraction 0.4), LOGOUT",
            "the list is one `UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])` answered by six `* n "
            "FETCH` lines, each with a header literal `{NNN}`; each opened message is a `UID FETCH n (BODY[])` "
            "whose reply carries the literal `{5120}` (the whole 5 KB message) and sets `\\Seen`"),
    Example("imap-download-all",
            Experiment(protocol="imap", strategy="download-all", **_SMALL),
            "IMAP download-all: one `UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[])` brings every message",
            "one command, one long reply: six `{5120}` literals back to back, then the tagged `OK`; compare "
            "the bytes down with the header-first file (same mailbox)"),
    Example("pop3-keep",
            Experiment(protocol="pop3", strategy="download-all", pop3_mode="keep", **_SMALL),
            "POP3 download-all, keep mode: CAPA, USER, PASS, STAT, UIDL, RETR 1..6, QUIT; mail stays on the "
            "server",
            "`UIDL` lists a unique id per message (how a device that keeps mail remembers what it has); each "
            "`RETR n` reply is `+OK` then the message, dot-stuffed, ended by a line with a single `.`; "
            "one command per round trip"),
    Example("pop3-delete",
            Experiment(protocol="pop3", strategy="download-all", pop3_mode="delete", **_SMALL),
            "POP3 download-all, delete mode: as keep, then `DELE 1..6` before QUIT",
            "`DELE n` only marks a message; the server removes them when `QUIT` ends the session (the UPDATE "
            "state of RFC 1939): a session cut off before QUIT deletes nothing"),
    Example("pop3-pipelined",
            Experiment(protocol="pop3", strategy="header-first", read_fraction=0.4, pipelining=True, **_SMALL),
            "POP3 header-first with PIPELINING (RFC 2449): `TOP n 0` for all six messages sent as one flight, "
            "then RETR of the 2 opened ones",
            "the six `TOP n 0` commands leave in one TCP segment (one packet, 54 bytes of payload) and the "
            "replies come back together; `TOP 1 0` returns the header only (up to the blank line) and the "
            "ending `.`; CAPA lists `PIPELINING`"),
)


def _cli_command(exp: Experiment, pcap: str) -> str:
    """The ``mailstudy session`` command line that runs the same session as ``exp`` and captures it."""
    parts = ["mailstudy session", f"--server {exp.server}", f"--protocol {exp.protocol}",
             f"--strategy {exp.strategy}"]
    if exp.protocol == "pop3":
        parts.append(f"--pop3-mode {exp.pop3_mode}")
    parts += [f"--messages {exp.messages}", f"--sizes {exp.sizes}", f"--seed {exp.seed}"]
    if exp.read_fraction:
        parts.append(f"--read-fraction {exp.read_fraction}")
    if not exp.batch:
        parts.append("--per-message")
    if exp.pipelining:
        parts.append("--pipelining")
    parts.append(f"--capture {pcap}")
    return " ".join(parts)


def _update_sidecar(pcap: Path, **changes) -> dict:
    from mailstudy.capture import sidecar_path

    side = sidecar_path(pcap)
    doc = json.loads(side.read_text()) if side.exists() else {"pcap": pcap.name}
    doc.update(changes)
    write_atomically(side, json.dumps(doc, indent=2, default=str) + "\n")
    return doc


def _redact_in_place(pcap: Path) -> str:
    """Redact ``pcap`` (and its sidecar) with :func:`mailstudy.offline.redact.redact_pcap`; returns a one-line
    summary."""
    from mailstudy.capture import sidecar_path
    from mailstudy.offline.redact import redact_pcap

    tmp = pcap.with_name(f".{pcap.stem}.redacted{pcap.suffix}")
    try:
        report = redact_pcap(pcap, tmp)
        if not report.bytes:
            raise RuntimeError(f"{pcap}: the redactor found no credential to overwrite in a session that logs in")
        os.replace(tmp, pcap)  # redact_pcap wrote tmp whole, with the umask's mode: one rename publishes it
        if sidecar_path(tmp).exists():  # the redactor's copy of the sidecar says what it overwrote
            doc = json.loads(sidecar_path(tmp).read_text())
            doc["pcap"] = pcap.name
            write_atomically(sidecar_path(pcap), json.dumps(doc, indent=2, default=str) + "\n")
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_path(tmp).unlink(missing_ok=True)
    return f"{', '.join(report.fields)}: {report.bytes} B overwritten"


def _ladder_of(pcap: Path, png: Path, ports=(), protocol: str | None = None) -> int:
    """Analyze ``pcap`` and draw its first session's ladder to ``png``; returns the number of sessions."""
    from mailstudy.faces.ladder import save_ladder
    from mailstudy.offline.analyze import analyze_connection, analyze_pcap

    if protocol is None:
        sessions = analyze_pcap(pcap, ports=ports).sessions
    else:  # TLS from the start on a port that is not 993/995: analyze_pcap cannot tell the protocol
        from mailstudy.net.pcap import read_tcp
        from mailstudy.net.reassembly import reassemble

        sessions = [analyze_connection(c, protocol, i) for i, c in enumerate(reassemble(read_tcp(pcap)))
                    if c.server[1] in set(ports)]
    if sessions:
        save_ladder(sessions[0], png)
    return len(sessions)


def make_plain_example(ex: Example, folder: Path, server: str = "embedded", backend: str = "auto") -> dict:
    """Capture one :class:`Example` into ``folder/NAME.pcap`` (+ sidecar, redaction, ladder); returns its record."""
    exp = replace(ex.experiment, server=server)
    pcap = folder / f"{ex.name}.pcap"
    row, report = run_captured_session(exp, pcap, backend=backend)
    if not report.complete:
        raise RuntimeError(f"{pcap}: capture incomplete ({'; '.join(report.warnings)})")
    redaction = _redact_in_place(pcap)
    command = _cli_command(exp, f"captures/{pcap.name}")
    side = _update_sidecar(pcap, example=ex.name, command=command)
    png = folder / f"{ex.name}.ladder.png"
    _ladder_of(pcap, png, ports=side.get("ports") or ())
    port = side["parameters"]["imap_port" if exp.protocol == "imap" else "pop3_port"]
    return {"name": ex.name, "port": port, "pcap": pcap.name, "ladder": png.name, "backend": report.backend,
            "rebuilt": report.rebuilt, "packets": report.packets, "file_bytes": pcap.stat().st_size,
            "bytes_up": report.bytes_up, "bytes_down": report.bytes_down, "commands": row.get("commands"),
            "round_trips": row.get("round_trips"), "redaction": redaction, "command": command,
            "shows": ex.shows, "look_for": ex.look_for, "protocol": exp.protocol}


# ---- IMAPS ---------------------------------------------------------------------------------------------------
def _why_no_imaps() -> str | None:
    from mailstudy.capture import CaptureError, choose_backend
    from mailstudy.servers.dovecot import dovecot_available

    why = dovecot_available()
    if why:
        return f"Dovecot is needed for the IMAPS example: {why}"
    if shutil.which("openssl") is None:
        return "the openssl CLI is needed to make the IMAPS example's certificate (apt-get install openssl)"
    try:
        choose_backend("tcpdump")
    except CaptureError as exc:
        return f"the IMAPS example needs tcpdump (a rebuilt pcap cannot show TLS): {exc}"
    return None


def make_imaps_example(folder: Path, messages: int = 3) -> dict:
    """An IMAPS session on Dovecot captured with tcpdump, with its TLS key log; returns its record.

    Raises RuntimeError (one line) when it cannot be made; :func:`make_examples` turns that into a skip.
    """
    from mailstudy.capture import Capture, CaptureReport, write_sidecar
    from mailstudy.corpus import generate
    from mailstudy.net.pcap import read_tcp
    from mailstudy.net.reassembly import reassemble
    from mailstudy.servers.base import Account
    from mailstudy.servers.dovecot import DovecotServer

    why = _why_no_imaps()
    if why:
        raise RuntimeError(why)
    pcap, keylog, png = folder / "imaps.pcap", folder / "imaps.keylog", folder / "imaps.ladder.png"
    user, password = IMAPS_ACCOUNT
    corpus = generate(messages, "fixed-5k", 1)
    server = DovecotServer([Account(user, password)], {user: corpus.raws()}, tls=True)
    keylog.unlink(missing_ok=True)
    with server:
        port = server.imaps_port
        ctx = ssl.create_default_context(cafile=server.tls_ca)
        ctx.keylog_filename = str(keylog)
        cap = Capture(pcap, [port], backend="tcpdump", host=server.host)
        with cap:
            c = imaplib.IMAP4_SSL(server.host, port, ssl_context=ctx, timeout=30)
            local = c.sock.getsockname()[:2]
            c.login(user, password)
            c.select("INBOX")
            c.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER])")
            c.uid("FETCH", "1", "(BODY[])")
            c.logout()
        described = server.describe()
    conns = [k for k in reassemble(read_tcp(pcap)) if k.client[1] == local[1]]
    if len(conns) != 1:
        raise RuntimeError(f"{pcap}: expected the one IMAPS connection from port {local[1]}, found {len(conns)}")
    conn = conns[0]
    complete = conn.gaps == 0 and not conn.mid_stream
    report = CaptureReport(path=str(pcap), backend="tcpdump", reason="tcpdump was asked for (TLS cannot be rebuilt)",
                           rebuilt=False, complete=complete, bytes_up=conn.bytes_up, bytes_down=conn.bytes_down,
                           trace_bytes_up=0, trace_bytes_down=0, packets=conn.packets, dropped=cap.dropped,
                           warnings=list(conn.warnings), time_offset_ns=cap.time_offset_ns)
    meta = {**described, "protocol": "imap", "tls": "implicit (IMAPS)", "imaps_port": port, "user": user,
            "messages": messages, "sizes": "fixed-5k", "seed": 1}
    write_sidecar(report, [port], meta)
    command = "python -m mailstudy.faces.examples (its IMAPS part: make_imaps_example)"
    _update_sidecar(pcap, redaction="none: the session is TLS; with imaps.keylog anyone can read it, so it uses "
                                    "its own throwaway account", keylog=keylog.name, example="imaps",
                    command=command,
                    note="trace_bytes_* are 0: the client's plain socket trace cannot see inside TLS, so this "
                         "capture is checked for gaps only")
    _ladder_of(pcap, png, ports=[port], protocol="imap")
    return {"name": "imaps", "pcap": pcap.name, "ladder": png.name, "backend": "tcpdump", "rebuilt": False,
            "packets": conn.packets, "file_bytes": pcap.stat().st_size, "bytes_up": conn.bytes_up,
            "bytes_down": conn.bytes_down, "commands": None, "round_trips": None,  # hidden by TLS
            "redaction": "none: TLS (own throwaway account)",
            "command": command, "protocol": "imap", "port": port, "keylog": keylog.name,
            "shows": "IMAPS (TLS from the first byte) against Dovecot: LOGIN, SELECT, a header FETCH, one BODY[] "
                     "FETCH, LOGOUT, all inside TLS 1.3",
            "look_for": "without the key log only TLS records are visible (Client Hello, Server Hello, then "
                        "Application Data); with `imaps.keylog` Wireshark decrypts them and shows the same IMAP "
                        "commands as the plain files, including the (throwaway) LOGIN"}


def tshark_decrypts(pcap: str | os.PathLike, keylog: str | os.PathLike, port: int) -> list[str]:
    """The IMAP lines tshark shows in ``pcap`` once it decrypts the TLS with ``keylog`` (empty: it could not)."""
    cmd = ["tshark", "-r", os.fspath(pcap), "-o", f"tls.keylog_file:{os.fspath(keylog)}",
           "-d", f"tcp.port=={port},tls", "-d", f"tls.port=={port},imap", "-Y", "imap",
           "-T", "fields", "-e", "imap.line"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"tshark failed: {out.stderr.strip()[-300:]}")
    return [ln for ln in out.stdout.splitlines() if ln.strip()]


# ---- README --------------------------------------------------------------------------------------------------
def write_readme(folder: Path, records: list[dict], skipped: dict[str, str], server: str = "embedded") -> Path:
    rows = []
    for r in records:
        files = f"[`{r['pcap']}`]({r['pcap']}) + [ladder]({r['ladder']})"
        if r.get("keylog"):
            files += f" + [`{r['keylog']}`]({r['keylog']})"
        dissector = "pop" if r["protocol"] == "pop3" else "imap"
        tshark = (f"`tshark -r captures/{r['pcap']} -d tcp.port=={r['port']},{dissector} -Y {dissector}`"
                  if not r.get("keylog") else "see below (key log)")
        rows.append(f"| {files} | {r['shows']} | `{r['command']}` | {r['port']} | {tshark} | {r['packets']} | "
                    f"{r['file_bytes']:,} "
                    f"({r['bytes_up']:,} up / {r['bytes_down']:,} down) | {r['backend']} | {r['redaction']} | "
                    f"{r['look_for']} |")
    imaps = next((r for r in records if r["name"] == "imaps"), None)
    port = imaps["port"] if imaps else "PORT"
    skipped_text = "".join(f"- `{k}` was not made on the last run: {v}\n" for k, v in skipped.items())
    text = f"""# Example captures

Small, real mail sessions for students: what a mail client and a server really say to each other. Every file
here is made by one command, `python -m mailstudy.faces.examples` (`mailstudy/examples.py`), which also rewrites this
page; do not edit the table by hand. Each `.pcap` has a JSON sidecar (`NAME.pcap.json`: capture backend,
redaction, server and version, parameters, byte and packet counts) and a ladder diagram (`NAME.ladder.png`: one
arrow per flight of bytes, client left, server right, time down).

Mailboxes: 6 messages of exactly 5,120 bytes each (`--sizes fixed-5k --seed 1`; IMAPS: 3 of them) on the
{server} server. The account is `alice` with the throwaway password `wonderland-42`, and even so the plain
captures are redacted: the user name and password bytes are overwritten with `x`, same length, so every byte
count, sequence number and round trip is unchanged (the sidecar's `redaction` says what was overwritten). The
IMAPS session uses its own throwaway account: with the key log anyone can read its LOGIN.

Columns: "packets" are TCP packets in the file; "bytes" is the file size, then TCP payload client to server (up)
and server to client (down). Payload bytes are the same on every rebuild (same seed, same server); packet counts
can differ a little, because tcpdump records how the kernel really cut the stream into segments. "command" runs
the same session by hand (`mailstudy session ... --capture FILE`, not redacted). "capture" is the backend:
`tcpdump` where permitted, else `rebuilt` (a pcap built from the client's socket trace: real bytes and times,
segmentation ours).

| files | what it shows | command | server port | tshark | packets | bytes | capture | redaction | what to look for |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

{skipped_text}
## Opening them

- **Wireshark**: open the `.pcap`. The servers listen on random free ports, so tell Wireshark what they speak:
  *Analyze → Decode As…* → TCP port (from the sidecar's `ports`) → IMAP or POP. Then *Follow → TCP Stream* shows
  the whole conversation as text.
- **tshark**: the port is in the sidecar (`ports`), e.g.
  `tshark -r captures/imap-header-first.pcap -d tcp.port==PORT,imap -Y imap`
  or for POP3 `tshark -r captures/pop3-keep.pcap -d tcp.port==PORT,pop -Y pop`.
  `tshark -r FILE -q -z follow,tcp,ascii,0` prints the conversation as text.
- **IMAPS with its key log**: without the key log you see only TLS records. With it:
  `tshark -r captures/imaps.pcap -o tls.keylog_file:captures/imaps.keylog -d tcp.port=={port},tls -d tls.port=={port},imap -Y imap`.
  In Wireshark: *Preferences → Protocols → TLS → (Pre)-Master-Secret log filename* = `captures/imaps.keylog`,
  and *Decode As…* TCP port {port} → TLS, TLS port {port} → IMAP.
- **mailstudy**: `mailstudy analyze captures/imap-header-first.pcap --exchanges` lists every exchange (command,
  status, bytes each way, latency) with the same parser the live measurements use. In Python:
  `mailstudy.offline.analyze.analyze_pcap("captures/pop3-keep.pcap").sessions[0].exchanges_frame()` and
  `mailstudy.faces.ladder.save_ladder(session, "ladder.png")`. The IMAPS file is TLS on a port that is not 993, so
  `analyze_pcap` cannot tell its protocol from a greeting; it reports it as not analyzed.

## Things to compare

- `imap-header-first` against `imap-download-all`: the same mailbox; header-first brings the headers and only the
  opened messages down; download-all brings every byte in one command.
- `pop3-keep` against `imap-download-all`: POP3 spends one round trip per message unless it pipelines
  (`pop3-pipelined`), IMAP asks for everything in one command.
- `pop3-pipelined`: the round trips the `TOP` run would cost without pipelining collapse into one.
"""
    path = folder / "README.md"
    path.write_text(text)
    return path


def make_examples(folder: str | os.PathLike = "captures", server: str = "embedded", backend: str = "auto",
                  imaps: bool = True, readme: bool = True, only: list[str] | None = None) -> dict:
    """Make every example into ``folder``; returns ``{"made": [records], "skipped": {name: reason}}``.

    ``backend``: how the plain sessions are captured (``auto`` falls back to ``rebuilt`` without privileges).
    ``only``: names of the examples to make (default: all). The IMAPS example is skipped, with its reason, when
    Dovecot, openssl or a permitted tcpdump is missing, or when ``imaps=False``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made, skipped = [], {}
    for ex in EXAMPLES:
        if only is None or ex.name in only:
            made.append(make_plain_example(ex, folder, server, backend))
    if imaps and (only is None or "imaps" in only):
        try:
            made.append(make_imaps_example(folder))
        except RuntimeError as exc:
            skipped["imaps"] = str(exc)
    elif not imaps:
        skipped["imaps"] = "not asked for (imaps=False)"
    if readme:
        write_readme(folder, made, skipped, server)
    return {"made": made, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mailstudy.faces.examples", description="Rebuild the example captures.")
    p.add_argument("--folder", default="captures")
    p.add_argument("--server", choices=["embedded", "dovecot"], default="embedded")
    p.add_argument("--capture-backend", choices=["auto", "tcpdump", "scapy", "rebuilt"], default="auto")
    p.add_argument("--no-imaps", action="store_true", help="skip the IMAPS example")
    args = p.parse_args(argv)
    try:
        out = make_examples(args.folder, args.server, args.capture_backend, imaps=not args.no_imaps)
    except Exception as exc:  # noqa: BLE001 - one line for the user, not a traceback
        print(f"examples: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for r in out["made"]:
        print(f"{r['pcap']}: {r['packets']} packets, {r['file_bytes']:,} B ({r['backend']}, redaction: "
              f"{r['redaction']})")
    for name, why in out["skipped"].items():
        print(f"{name}: skipped ({why})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
