"""JMAP (RFC 8620, RFC 8621) sessions over a traced socket: discovery, header-first and download-all.

Why: the study's third protocol. A JMAP session is measured exactly like an IMAP or POP3 one: every byte that
crosses the client's socket is recorded by :class:`~mailstudy.live.trace.TracedSocket`, a round trip is a client
flight (here: one HTTP request, headers and body written at once), and every downloaded message is checked
byte for byte against what was delivered.

Client: Python's own ``http.client`` over the traced socket, one HTTP/1.1 connection kept alive for the whole
session (a session is one TCP connection, as for IMAP and POP3; a server that closes it mid-session is an
error, never a silent reconnect). Not ``jmapc`` (PyPI): it sends through ``requests``/urllib3, whose sockets we
would have to reach into to count bytes, and it adds headers of its own; ``http.client`` is the stdlib client,
as ``imaplib`` and ``poplib`` are for the others, and its requests are small and predictable: request line,
``Host``, ``Accept-Encoding``, ``Authorization: Basic``, and for a POST ``Content-Type`` and ``Content-Length``.
Compression: ``identity`` by default (what ``http.client`` negotiates, as ``imaplib`` asks for no COMPRESS);
``compress="gzip"`` asks for gzip as a browser-based client would, and the bytes counted are the compressed ones.

What each strategy sends (our choices, so a reader of a chart knows what was measured):

- discovery (every session, as a client with no cached session object): ``GET /.well-known/jmap``, following
  redirects on the same connection, to the session resource (RFC 8620 section 2.2), which names the account
  and the ``apiUrl`` and ``downloadUrl``.
- header-first: one POST with ``Email/query`` (all mail, newest first) and ``Email/get`` of :data:`LIST_PROPERTIES`
  for its ids by a back-reference (``#ids``, RFC 8620 section 3.7): the list is ready after one round trip
  (more when the mailbox exceeds the server's ``maxObjectsInGet``: one such request per page). Then one GET of the
  raw message (its ``blobId`` at ``downloadUrl``) per message the user opens (the same seeded draw as IMAP's).
- download-all: one POST with ``Email/query`` and ``Email/get`` of ``id``, ``blobId`` and ``size``, then one GET
  per message blob; the list is ready when the last message is down. (``fetchAllBodyValues`` returns decoded
  text, not the message's bytes, so it could not be checked byte for byte.)

Integrity: each blob must be a delivered message byte for byte (:meth:`Known.check_message`); in the list, each
email's ``size`` must be that of the delivered message with its ``Message-ID`` (a list holds no raw bytes).
Errors: an HTTP status other than 2xx (after redirects) or a JMAP method error (``"error"`` in a method
response) is a :class:`~mailstudy.live.access.SessionError` naming the method or the request.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailstudy.corpus.sections import header_of
from mailstudy.live.access import IntegrityError, Known, SessionError, SessionResult, choose_opened
from mailstudy.live.trace import Trace, traced_connection
from mailstudy.protocol.events import Exchange
from mailstudy.protocol.metrics import percentile, session_metrics
from mailstudy.wire import DOWN, UP

STRATEGIES = ("header-first", "download-all")
COMPRESSIONS = ("identity", "gzip")
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
#: What the header-first list asks for: what a message list shows (sender, subject, date, size, flags, whether
#: it has attachments, a preview line) plus the ids needed to open a message. Our choice, not a standard's.
LIST_PROPERTIES = ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
                   "from", "to", "subject", "sentAt", "hasAttachment", "preview"]
ALL_PROPERTIES = ["id", "blobId", "size"]
DISCOVERY_PATH = "/.well-known/jmap"
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class JmapSpec:
    """What one JMAP session does; the fields IMAP's and POP3's :class:`SessionSpec` share, and ``compress``."""

    protocol: str = "jmap"
    strategy: str = "header-first"
    read_fraction: float = 0.0
    seed: int = 0
    compress: str = "identity"

    def __post_init__(self) -> None:
        if self.protocol != "jmap":
            raise ValueError(f"a JmapSpec's protocol is jmap, not {self.protocol!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"read_fraction must be within [0, 1], not {self.read_fraction}")
        if self.compress not in COMPRESSIONS:
            raise ValueError(f"compress must be one of {COMPRESSIONS}, not {self.compress!r}")


class _Connection(http.client.HTTPConnection):
    """``http.client`` over a :class:`TracedSocket`; connects once (a second connect would be a second
    session's worth of handshakes hidden in one session)."""

    def __init__(self, host: str, port: int, timeout: float, trace: Trace) -> None:
        super().__init__(host, port, timeout=timeout)
        self.trace = trace
        self.connected_once = False

    def connect(self) -> None:
        if self.connected_once:
            raise SessionError("the JMAP server closed the HTTP connection mid-session")
        self.connected_once = True
        self.sock = traced_connection(self.host, self.port, self.timeout, self.trace)


@dataclass
class _Client:
    conn: _Connection
    trace: Trace
    authorization: str
    compress: str
    exchanges: list[Exchange] = field(default_factory=list)

    def request(self, method: str, path: str, what: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
        """One HTTP request and its whole response: (status, lower-case headers, decoded body); one exchange."""
        start = len(self.trace.chunks)
        headers = {"Authorization": self.authorization}
        if self.compress != "identity":
            headers["Accept-Encoding"] = self.compress
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SessionError(f"JMAP {what} ({method} {path}) failed: {exc or type(exc).__name__}") from exc
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if hdrs.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        self._exchange(start, method, f"{path} {what}", resp.status, resp.reason)
        if resp.will_close:  # the next request would need a new connection: not one session any more
            self.conn.connected_once = True
        return resp.status, hdrs, data

    def _exchange(self, start: int, method: str, arguments: str, status: int, reason: str) -> None:
        chunks = self.trace.chunks[start:]
        up = [c for c in chunks if c.direction == UP]
        down = [c for c in chunks if c.direction == DOWN]
        self.exchanges.append(Exchange(
            protocol="jmap", index=len(self.exchanges), tag=None, command=method, arguments=arguments,
            status="OK" if 200 <= status < 400 else "NO", status_text=f"{status} {reason}",
            t_sent=up[0].t if up else None, t_first_response=down[0].t if down else None,
            t_done=down[-1].t if down else None, bytes_up=sum(len(c.data) for c in up),
            bytes_down=sum(len(c.data) for c in down)))

    def call(self, api_path: str, calls: list[list]) -> list[list]:
        """POST method calls to the API; returns the method responses, raising on any error."""
        names = "+".join(c[0] for c in calls)
        body = json.dumps({"using": USING, "methodCalls": calls}, separators=(",", ":")).encode()
        status, _, data = self.request("POST", api_path, names, body)
        if status != 200:
            raise SessionError(f"JMAP {names} failed: HTTP {status}: {_problem(data)}")
        try:
            responses = json.loads(data)["methodResponses"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"JMAP {names}: the response is not a JMAP response ({exc})") from exc
        for name, args, call_id in responses:
            if name == "error":
                method = next((c[0] for c in calls if c[2] == call_id), call_id)
                raise SessionError(f"JMAP method {method} failed: {args.get('type')}"
                                   + (f" ({args['description']})" if args.get("description") else ""))
        return responses


def _problem(data: bytes) -> str:
    """The one-line gist of an HTTP error body (RFC 7807 problem details, or text)."""
    try:
        doc = json.loads(data)
        return str(doc.get("detail") or doc.get("title") or doc.get("type") or doc)[:200]
    except (ValueError, AttributeError):
        text = data.decode(errors="replace")
        title = re.search(r"<title>([^<]*)</title>", text, re.I)  # an HTML error page: its title says it
        return (title.group(1) if title else " ".join(text[:200].split())) or "(no body)"


def _discover(client: _Client) -> dict:
    """Follow ``/.well-known/jmap`` to the session resource (RFC 8620 section 2.2)."""
    path = DISCOVERY_PATH
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, data = client.request("GET", path, "session")
        if status in (301, 302, 303, 307, 308) and headers.get("location"):
            loc = urllib.parse.urlsplit(headers["location"])
            path = (loc.path or "/") + (f"?{loc.query}" if loc.query else "")
            continue
        if status != 200:
            raise SessionError(f"JMAP session discovery (GET {path}) failed: HTTP {status}: {_problem(data)}")
        try:
            session = json.loads(data)
            session["apiUrl"], session["downloadUrl"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"JMAP session discovery: GET {path} returned no session resource ({exc})") from exc
        return session
    raise SessionError(f"JMAP session discovery: more than {MAX_REDIRECTS} redirects from {DISCOVERY_PATH}")


def _message_id(raw: bytes) -> str | None:
    value = BytesHeaderParser(policy=compat32).parsebytes(header_of(raw))["Message-ID"]
    m = re.search(r"<([^>]*)>", str(value or ""))
    return m.group(1) if m else None


def _list(client: _Client, api: str, account: str, properties: list[str], max_get: int) -> list[dict]:
    """Every email, newest first: Email/query + Email/get by back-reference, one request per page."""
    emails: list[dict] = []
    position = 0
    while True:
        responses = client.call(api, [
            ["Email/query", {"accountId": account, "sort": [{"property": "receivedAt", "isAscending": False}],
                             "position": position, "limit": max_get, "calculateTotal": True}, "q"],
            ["Email/get", {"accountId": account, "properties": properties,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]])
        query = next(r[1] for r in responses if r[0] == "Email/query")
        got = next(r[1] for r in responses if r[0] == "Email/get")
        emails += got["list"]
        position += len(query["ids"])
        if not query["ids"] or position >= query.get("total", position):
            return emails


def run_jmap_session(host: str, http_port: int, user: str, password: str, spec: JmapSpec, known: Known,
                     timeout: float = 60.0) -> SessionResult:
    """Run one JMAP session of ``spec`` against a running server and measure it (see the module docstring).

    Raises :class:`IntegrityError` when a downloaded message or a listed size differs from what was delivered,
    and :class:`SessionError` naming the request or method when the server answers with an error.
    """
    trace = Trace()
    conn = _Connection(host, http_port, timeout, trace)
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    client = _Client(conn, trace, authorization, spec.compress)
    try:
        session = _discover(client)
        account = session.get("primaryAccounts", {}).get("urn:ietf:params:jmap:mail") or next(
            iter(session.get("accounts") or {}), None)
        if account is None:
            raise SessionError(f"JMAP session resource of {user!r} names no mail account")
        max_get = int(session.get("capabilities", {}).get("urn:ietf:params:jmap:core", {})
                      .get("maxObjectsInGet", 500))
        api = urllib.parse.urlsplit(session["apiUrl"]).path
        header_first = spec.strategy == "header-first"
        emails = _list(client, api, account, LIST_PROPERTIES if header_first else ALL_PROPERTIES, max_get)
        by_mid = {}
        for sha, raw in known.by_sha.items():
            by_mid.setdefault(_message_id(raw), []).append(len(raw))
        if header_first:
            for e in emails:
                mid = (e.get("messageId") or [None])[0]
                if e.get("size") not in by_mid.get(mid, ()):
                    raise IntegrityError(f"JMAP email {e.get('id')}: size {e.get('size')} with Message-ID {mid!r} "
                                         f"matches no delivered message")
            trace.mark("list_ready")
            # the user opens the same seeded share as in IMAP, counted in the order the list shows them
            to_open = [emails[i] for i in choose_opened(len(emails), spec.read_fraction, spec.seed)]
        else:
            to_open = emails
        t_opens = len(client.exchanges)
        for e in to_open:
            path = _download_path(session["downloadUrl"], account, e["blobId"])
            status, _, data = client.request("GET", path, "download")
            if status != 200:
                raise SessionError(f"JMAP download of blob {e['blobId']} failed: HTTP {status}: {_problem(data)}")
            known.check_message(data, f"JMAP email {e['id']}")
        if not header_first:
            trace.mark("list_ready")
    finally:
        conn.close()
    exchanges = client.exchanges
    metrics = session_metrics(trace.chunks, exchanges, t_start=trace.t_connect_ns,
                              t_list_ready=trace.milestones.get("list_ready"), time_scale=1e-9).as_row()
    waits = [(x.t_done - x.t_sent) * 1e-9 for x in exchanges[t_opens:]] if header_first else []
    metrics.update(opens=len(waits), open_median_s=percentile(waits, 50), open_p95_s=percentile(waits, 95))
    return SessionResult(spec=spec, trace=trace, exchanges=exchanges, metrics=metrics, messages=len(emails),
                         headers_fetched=len(emails) if header_first else 0, bodies_fetched=len(to_open),
                         opened=sorted(choose_opened(len(emails), spec.read_fraction, spec.seed))
                         if header_first else [])


def _download_path(template: str, account: str, blob: str) -> str:
    """``downloadUrl`` (RFC 8620 section 6.2) filled in for one raw message, as a path on the same server."""
    q = urllib.parse.quote
    url = (template.replace("{accountId}", q(account, safe="")).replace("{blobId}", q(blob, safe=""))
           .replace("{name}", "message.eml").replace("{type}", q("message/rfc822", safe="")))
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
