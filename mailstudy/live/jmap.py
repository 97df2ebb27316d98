"""JMAP (RFC 8620, RFC 8621) sessions over a traced socket: discovery, header-first, download-all and preview.

Why: the study's third protocol. A JMAP session is measured exactly like an IMAP or POP3 one: every byte that
crosses the client's socket is recorded by :class:`~mailstudy.live.trace.TracedSocket`, the trace is parsed by
the one JMAP parser (:mod:`mailstudy.protocol.jmap`: an exchange is one HTTP request and its response) and
measured by the one metrics definition, and every downloaded message is checked byte for byte against what was
delivered.

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
  and the ``apiUrl``, ``downloadUrl`` and ``eventSourceUrl``.
- header-first: one POST with ``Email/query`` (all mail, newest first) and ``Email/get`` of :data:`LIST_PROPERTIES`
  (the ``preview`` property among them: RFC 8621 section 4.1.4, up to 256 characters of the text, the list's
  preview line) for its ids by a back-reference (``#ids``, RFC 8620 section 3.7): the list is ready after one
  round trip (more when the mailbox exceeds the server's ``maxObjectsInGet``: one such request per page). Then,
  open-on-demand: one GET of the raw message (its ``blobId`` at ``downloadUrl``) per message the user opens (the
  same seeded draw as IMAP's and POP3's).
- preview (``preview=N``, header-first only): each opened message is read in part instead of whole, as IMAP's
  ``BODY.PEEK[TEXT]<0.N>``: one POST ``Email/get`` of ``bodyValues`` with ``fetchTextBodyValues`` and
  ``maxBodyValueBytes: N`` (RFC 8621 section 4.2). The value is decoded text, not the message's bytes, so it is
  checked as the start of the delivered message's first text part, decoded and with CRLF made LF as the RFC says.
- download-all: one POST with ``Email/query`` and ``Email/get`` of ``id``, ``blobId`` and ``size``, then one GET
  per message blob; the list is ready when the last message is down. (``fetchAllBodyValues`` returns decoded
  text, not the message's bytes, so it could not be checked byte for byte.)

Change sync (``Email/changes``) and push (EventSource) are :mod:`mailstudy.live.jmap_sync`'s.

Integrity: each blob must be a delivered message byte for byte (:meth:`Known.check_message`); in the list, each
email's ``size`` must be that of the delivered message with its ``Message-ID`` (a list holds no raw bytes).
Errors: an HTTP status other than 2xx (after redirects) or a JMAP method error (``"error"`` in a method
response) is a :class:`~mailstudy.live.access.SessionError` naming the method or the request, on one line.
"""

from __future__ import annotations

import base64
import email
import gzip
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from email.policy import compat32

from mailstudy.live.access import IntegrityError, Known, SessionError, SessionResult, choose_opened
from mailstudy.live.engine import measure
from mailstudy.live.trace import Trace, traced_connection

STRATEGIES = ("header-first", "download-all")
#: the servers mailstudy runs that speak JMAP
JMAP_SERVERS = ("cyrus",)
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
    preview: int = 0  # header-first: read only the first N bytes of each opened message's text (0: all of it)

    def __post_init__(self) -> None:
        if self.protocol != "jmap":
            raise ValueError(f"a JmapSpec's protocol is jmap, not {self.protocol!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"read_fraction must be within [0, 1], not {self.read_fraction}")
        if self.compress not in COMPRESSIONS:
            raise ValueError(f"compress must be one of {COMPRESSIONS}, not {self.compress!r}")
        if self.preview < 0:
            raise ValueError(f"preview must be >= 0 bytes, not {self.preview}")
        if self.preview and self.strategy != "header-first":
            raise ValueError("preview reads opened messages in part: it needs strategy header-first")


class HttpConnection(http.client.HTTPConnection):
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


def basic(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic (RFC 7617) for ``user``:``password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class JmapClient:
    """One JMAP session's HTTP connection and what discovery told it (:func:`open_jmap`)."""

    conn: HttpConnection
    authorization: str
    compress: str = "identity"
    session: dict = field(default_factory=dict)
    account: str = ""
    api: str = "/jmap/"
    max_get: int = 500

    def request(self, method: str, path: str, what: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        """One HTTP request and its whole response: (status, lower-case headers, decoded body)."""
        sent = {"Authorization": self.authorization, **(headers or {})}
        if self.compress != "identity":
            sent["Accept-Encoding"] = self.compress
        if body is not None:
            sent["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=sent)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SessionError(f"JMAP {what} ({method} {path}) failed: {exc or type(exc).__name__}") from exc
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if hdrs.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        if resp.will_close:  # the next request would need a new connection: not one session any more
            self.conn.connected_once = True
        return resp.status, hdrs, data

    def call(self, calls: list[list]) -> list[list]:
        """POST method calls to the API; returns the method responses, raising on any error."""
        names = "+".join(c[0] for c in calls)
        body = json.dumps({"using": USING, "methodCalls": calls}, separators=(",", ":")).encode()
        status, _, data = self.request("POST", self.api, names, body)
        if status != 200:
            raise SessionError(f"JMAP {names} failed: HTTP {status}: {problem(data)}")
        try:
            responses = json.loads(data)["methodResponses"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"JMAP {names}: the response is not a JMAP response ({exc})") from exc
        for name, args, call_id in responses:
            if name == "error":
                method = next((c[0] for c in calls if c[2] == call_id), call_id)
                raise SessionError(f"JMAP method {method} failed: {args.get('type')}"
                                   + (f" ({' '.join(str(args['description']).split())})"
                                      if args.get("description") else ""))
        return responses

    def response(self, responses: list[list], name: str) -> dict:
        """The arguments of the first method response called ``name``."""
        found = next((r[1] for r in responses if r[0] == name), None)
        if found is None:
            raise SessionError(f"JMAP: no {name} response among {[r[0] for r in responses]}")
        return found

    def download(self, blob: str) -> bytes:
        """The raw message of ``blob`` (``downloadUrl``, RFC 8620 section 6.2), on this connection."""
        path = _download_path(self.session["downloadUrl"], self.account, blob)
        status, _, data = self.request("GET", path, "download")
        if status != 200:
            raise SessionError(f"JMAP download of blob {blob} failed: HTTP {status}: {problem(data)}")
        return data

    def close(self) -> None:
        self.conn.close()


def problem(data: bytes) -> str:
    """The one-line gist of an HTTP error body (RFC 7807 problem details, or text)."""
    try:
        doc = json.loads(data)
        return " ".join(str(doc.get("detail") or doc.get("title") or doc.get("type") or doc).split())[:200]
    except (ValueError, AttributeError):
        text = data.decode(errors="replace")
        title = re.search(r"<title>([^<]*)</title>", text, re.I)  # an HTML error page: its title says it
        return (title.group(1) if title else " ".join(text[:200].split())) or "(no body)"


def _discover(client: JmapClient) -> dict:
    """Follow ``/.well-known/jmap`` to the session resource (RFC 8620 section 2.2)."""
    path = DISCOVERY_PATH
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, data = client.request("GET", path, "session")
        if status in (301, 302, 303, 307, 308) and headers.get("location"):
            loc = urllib.parse.urlsplit(headers["location"])
            path = (loc.path or "/") + (f"?{loc.query}" if loc.query else "")
            continue
        if status != 200:
            raise SessionError(f"JMAP session discovery (GET {path}) failed: HTTP {status}: {problem(data)}")
        try:
            session = json.loads(data)
            session["apiUrl"], session["downloadUrl"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"JMAP session discovery: GET {path} returned no session resource ({exc})") from exc
        return session
    raise SessionError(f"JMAP session discovery: more than {MAX_REDIRECTS} redirects from {DISCOVERY_PATH}")


def open_jmap(host: str, port: int, user: str, password: str, trace: Trace, compress: str = "identity",
              timeout: float = 60.0, session: dict | None = None) -> JmapClient:
    """Connect (traced) and discover the session: a :class:`JmapClient` ready for method calls. ``session``: a
    session resource the client kept from before (RFC 8620 section 2 lets it cache one): no discovery then."""
    client = JmapClient(HttpConnection(host, port, timeout, trace), basic(user, password), compress)
    try:
        client.session = session = session if session is not None else _discover(client)
        account = session.get("primaryAccounts", {}).get("urn:ietf:params:jmap:mail") or next(
            iter(session.get("accounts") or {}), None)
        if account is None:
            raise SessionError(f"JMAP session resource of {user!r} names no mail account")
        client.account = account
        client.max_get = int(session.get("capabilities", {}).get("urn:ietf:params:jmap:core", {})
                             .get("maxObjectsInGet", 500))
        client.api = urllib.parse.urlsplit(session["apiUrl"]).path
    except BaseException:
        client.close()
        raise
    return client


def list_emails(client: JmapClient, properties: list[str]) -> tuple[list[dict], str]:
    """Every email, newest first: Email/query + Email/get by back-reference, one request per page; and the
    Email state of the last page (what a later ``Email/changes`` starts from)."""
    emails: list[dict] = []
    position, state = 0, ""
    while True:
        responses = client.call([
            ["Email/query", {"accountId": client.account, "sort": [{"property": "receivedAt", "isAscending": False}],
                             "position": position, "limit": client.max_get, "calculateTotal": True}, "q"],
            ["Email/get", {"accountId": client.account, "properties": properties,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]])
        query, got = client.response(responses, "Email/query"), client.response(responses, "Email/get")
        emails += got["list"]
        state = got.get("state", state)
        position += len(query["ids"])
        if not query["ids"] or position >= query.get("total", position):
            return emails, state


def check_listed(emails: list[dict], known: Known) -> None:
    """Each listed email's ``size`` must be that of the delivered message with its Message-ID."""
    for e in emails:
        mid = (e.get("messageId") or [None])[0]
        sha = known.by_message_id.get(f"<{mid}>".encode()) if mid else None
        if sha is None or e.get("size") != len(known.by_sha[sha]):
            raise IntegrityError(f"JMAP email {e.get('id')}: size {e.get('size')} with Message-ID {mid!r} "
                                 f"matches no delivered message")


def first_text(raw: bytes) -> str:
    """The first text part of a message, decoded, with CRLF made LF (what JMAP's ``bodyValues`` hold)."""
    msg = email.message_from_bytes(raw, policy=compat32)
    for part in msg.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            data = part.get_payload(decode=True) or b""
            return data.decode(part.get_content_charset() or "us-ascii", "replace").replace("\r\n", "\n")
    return ""


def read_preview(client: JmapClient, e: dict, known: Known, nbytes: int) -> None:
    """Open ``e`` in part: its text's first ``nbytes`` bytes (``bodyValues``), checked against the delivered text."""
    got = client.response(client.call([["Email/get", {
        "accountId": client.account, "ids": [e["id"]], "properties": ["messageId", "bodyValues"],
        "fetchTextBodyValues": True, "maxBodyValueBytes": nbytes}, "p"]]), "Email/get")["list"]
    values = got[0].get("bodyValues", {}) if got else {}
    value = next(iter(values.values()), {}).get("value", "") if values else ""
    mid = (got[0].get("messageId") or [None])[0] if got else None
    sha = known.by_message_id.get(f"<{mid}>".encode()) if mid else None
    if sha is None or len(value.encode()) > nbytes or not first_text(known.by_sha[sha]).startswith(value):
        raise IntegrityError(f"JMAP preview of email {e['id']}: {len(value.encode())} bytes of text are not the "
                             f"start of a delivered message's text")


def run_jmap_session(host: str, http_port: int, user: str, password: str, spec: JmapSpec, known: Known,
                     timeout: float = 60.0) -> SessionResult:
    """Run one JMAP session of ``spec`` against a running server and measure it (see the module docstring).

    Raises :class:`IntegrityError` when a downloaded message or a listed size differs from what was delivered,
    and :class:`SessionError` naming the request or method when the server answers with an error.
    """
    trace = Trace()
    client = open_jmap(host, http_port, user, password, trace, spec.compress, timeout)
    header_first = spec.strategy == "header-first"
    opened: list[int] = []
    try:
        emails, _state = list_emails(client, LIST_PROPERTIES if header_first else ALL_PROPERTIES)
        if header_first:
            check_listed(emails, known)
            trace.mark("list_ready")
            # the user opens the same seeded share as in IMAP, counted in the order the list shows them
            opened = choose_opened(len(emails), spec.read_fraction, spec.seed)
        to_open = [emails[i] for i in opened] if header_first else emails
        for e in to_open:
            if spec.preview:
                read_preview(client, e, known, spec.preview)
            else:
                known.check_message(client.download(e["blobId"]), f"JMAP email {e['id']}")
        if not header_first:
            trace.mark("list_ready")
    finally:
        client.close()
    return measure(spec, trace, len(emails), headers_fetched=len(emails) if header_first else 0,
                   bodies_fetched=0 if spec.preview else len(to_open), opened=opened)


def _download_path(template: str, account: str, blob: str) -> str:
    """``downloadUrl`` (RFC 8620 section 6.2) filled in for one raw message, as a path on the same server."""
    q = urllib.parse.quote
    url = (template.replace("{accountId}", q(account, safe="")).replace("{blobId}", q(blob, safe=""))
           .replace("{name}", "message.eml").replace("{type}", q("message/rfc822", safe="")))
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
