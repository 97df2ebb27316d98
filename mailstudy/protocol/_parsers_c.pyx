# cython: language_level=3, boundscheck=False, cdivision=True
"""The IMAP and POP3 parsers' hot loops in typed Cython (issue 21's speed goal): the same parsers, faster.

Why a module of its own: the pure modules (``_stream.py``, ``imap.py``, ``pop3.py``) are the reference, and
compiling them unchanged gained about 1 % (bench/analyze.py): the time goes to Python attribute look-ups, frames
and small objects on every line. Here each parser is a ``cdef class`` core with typed fields (the byte stream's
offsets, the literal countdown, the pending commands) mixed *in front of* the pure class: the core overrides
only the hot methods (feeding runs, cutting lines with ``memchr``, reading a command line, a response, a
tagged status, a POP3 status line and multi-line data, completing an exchange), and every rare path (gaps,
resynchronizing, runaway lines, SASL, credential spans, TLS, COMPRESS, end of stream) is the pure class's own
code, working on the same fields through their descriptors. A server run is read as its chunks come, so the
bytes of a literal or of POP3 data (without ``keep_payloads``) are counted where they lie in the chunks and
never copied into the buffer (``_down_chunks`` says what waits for the run's end). So each rule keeps one home,
and
``mailstudy.protocol`` picks these classes through :func:`mailstudy.compiled.compiled_module`
(``MAILSTUDY_PURE=1``: the pure ones). tests/test_compiled_parsers.py checks that every event, field and byte
count equals the reference's, on captures and on odd chunkings.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memchr, memcpy

import mailstudy.protocol._stream as _stream
import mailstudy.protocol.imap as _imap
import mailstudy.protocol.pop3 as _pop3
from mailstudy.protocol.events import DOWN, UP, Exchange, Greeting, Span
from mailstudy.protocol.imap_lexer import literal_marker

cdef extern from "Python.h":
    int PyObject_GenericSetDict(object o, object value, void *context) except -1
    Py_ssize_t PY_SSIZE_T_MAX

cdef object _new_object = object.__new__
cdef object _GREETING = _imap._GREETING
cdef object _SPAN_COMMANDS_IMAP = _imap._SPAN_COMMANDS
cdef object _UID_SET_COMMANDS = _imap._UID_SET_COMMANDS
cdef object _SPAN_COMMANDS_POP3 = _pop3._SPAN_COMMANDS
cdef frozenset _ALWAYS_MULTILINE = frozenset(_pop3._ALWAYS_MULTILINE)
cdef frozenset _MULTILINE_WITHOUT_ARGS = frozenset(_pop3._MULTILINE_WITHOUT_ARGS)
cdef str _IMAP = _imap.PROTOCOL
cdef str _POP3 = _pop3.PROTOCOL
cdef str _UP = UP
cdef str _DOWN = DOWN


cdef inline str _text(bytes data):
    return data.decode("utf-8", "replace")


cdef inline bint _ieq(char c, char upper):
    return c == upper or c == upper + 32


cdef inline str _decode(const char *d, Py_ssize_t a, Py_ssize_t b):
    """``_text(data[a:b])`` without the slice."""
    return PyUnicode_DecodeUTF8(d + a, b - a, "replace")


cdef inline Py_ssize_t _eol_len(const char *d, Py_ssize_t n):
    """The length of ``_strip_eol`` of a line."""
    if n >= 2 and d[n - 1] == 10 and d[n - 2] == 13:
        return n - 2
    if n >= 1 and d[n - 1] == 10:
        return n - 1
    return n


cdef inline bytes _strip_eol(bytes line):
    """``_stream.strip_eol``: the line without its CRLF (or bare LF)."""
    cdef Py_ssize_t n = len(line), m = _eol_len(line, n)
    return line if m == n else line[:m]


cdef inline Py_ssize_t _space(const char *d, Py_ssize_t a, Py_ssize_t b):
    """The first space in ``d[a:b]``, else ``b``."""
    cdef const char *p = <const char *>memchr(d + a, 32, b - a) if b > a else NULL
    return b if p == NULL else p - d


cdef inline bint _ws(char c):
    return c == 32 or 9 <= c <= 13  # bytes.strip's white space: space \t \n \v \f \r


cdef bint _is_done(const char *d, Py_ssize_t n):
    """``line.strip().upper() == b"DONE"``."""
    cdef Py_ssize_t a = 0, b = n
    while a < b and _ws(d[a]):
        a += 1
    while b > a and _ws(d[b - 1]):
        b -= 1
    return b - a == 4 and _ieq(d[a], 68) and _ieq(d[a + 1], 79) and _ieq(d[a + 2], 78) and _ieq(d[a + 3], 69)


cdef dict _TEMPLATE = dict.fromkeys(["protocol", "index", "tag", "command", "arguments", "status", "status_text",
                                     "t_sent", "t_first_response", "t_done", "bytes_up", "bytes_down", "literals",
                                     "data", "multiline", "missing"])


cdef object _exchange(str protocol, Py_ssize_t index, object tag, object command, object arguments, object status,
                      object status_text, object t_sent, object t_first_response, object t_done,
                      Py_ssize_t bytes_up, Py_ssize_t bytes_down, object literals, object data, bint multiline,
                      object missing):
    """``_stream.new_exchange``: an Exchange equal to ``Exchange(...)``, its ``__dict__`` filled in field order
    (a copy of a dict with the fields' keys, then its values: no key is inserted, no table grows)."""
    e = _new_object(Exchange)
    cdef dict d = _TEMPLATE.copy()
    d["protocol"] = protocol
    d["index"] = index
    d["tag"] = tag
    d["command"] = command
    d["arguments"] = arguments
    d["status"] = status
    d["status_text"] = status_text
    d["t_sent"] = t_sent
    d["t_first_response"] = t_first_response
    d["t_done"] = t_done
    d["bytes_up"] = bytes_up
    d["bytes_down"] = bytes_down
    d["literals"] = literals
    d["data"] = data
    d["multiline"] = multiline
    d["missing"] = missing
    PyObject_GenericSetDict(e, d, NULL)
    return e


# ---- the byte stream ------------------------------------------------------------------------------------------
cdef class StreamCore:
    """``_stream.ByteStream``'s fields, typed; :class:`ByteStream` puts the pure methods on top."""

    cdef public bytearray buf
    cdef public Py_ssize_t base, total, max_line, _lo, _scan
    cdef public list _offs, _ts
    cdef public bint skipping


class ByteStream(StreamCore, _stream.ByteStream):
    """The pure ByteStream's methods on typed fields (the parsers' C code reads the fields directly)."""

    def __init__(self, max_line=_stream.MAX_LINE):
        _stream.ByteStream.__init__(self, min(max(1, int(max_line)), PY_SSIZE_T_MAX))


cdef inline object s_line(StreamCore s):
    """``ByteStream.line``: the next whole line, consumed, or None."""
    if s.skipping:
        return None
    cdef bytearray buf = s.buf
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(buf)
    cdef Py_ssize_t lo = s._scan
    cdef Py_ssize_t hi = s.max_line if s.max_line < n else n
    if lo >= hi:
        return None
    cdef char *data = PyByteArray_AS_STRING(buf)
    cdef char *p = <char *>memchr(data + lo, 10, hi - lo)
    if p == NULL:
        return None
    cdef Py_ssize_t i = p - data + 1
    line = PyBytes_FromStringAndSize(data, i)
    del buf[:i]
    s.base += i
    s._scan = 0
    return line


cdef inline Py_ssize_t s_skip(StreamCore s, object want) except -1:
    """``ByteStream.skip``: consume up to ``want`` bytes (any int); returns how many."""
    cdef bytearray buf = s.buf
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf)
    cdef Py_ssize_t n
    if want >= size:
        n = size
        del buf[:]
    else:
        n = want
        if n < 0:
            n = 0
        del buf[:n]
    s.base += n
    s._scan = s._scan - n if s._scan > n else 0
    return n


cdef inline bytes s_take(StreamCore s, object want):
    """``ByteStream.take_bytes``: consume up to ``want`` bytes and return them."""
    cdef bytearray buf = s.buf
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf)
    cdef Py_ssize_t n = size if want >= size else want
    if n < 0:
        n = 0
    data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buf), n)
    s_skip(s, n)
    return data


cdef object s_t_at(StreamCore s, Py_ssize_t offset):
    """``ByteStream.t_at``: the time of the chunk that brought byte ``offset``."""
    cdef list offs = s._offs
    if not s._ts:
        return None
    cdef Py_ssize_t lo = s._lo, a = s._lo, hi = len(offs), mid
    while a < hi:
        mid = (a + hi) >> 1
        if offset < <Py_ssize_t>offs[mid]:
            hi = mid
        else:
            a = mid + 1
    a -= 1
    return s._ts[a if a > lo else lo]


cdef Py_ssize_t s_bisect(list offs, Py_ssize_t x, Py_ssize_t a) except -2:
    cdef Py_ssize_t hi = len(offs), mid
    while a < hi:
        mid = (a + hi) >> 1
        if x < <Py_ssize_t>offs[mid]:
            hi = mid
        else:
            a = mid + 1
    return a


cdef inline int s_trim(StreamCore s) except -1:
    """``ByteStream.trim``: drop the marks of chunks wholly consumed."""
    cdef list offs = s._offs
    cdef Py_ssize_t lo = s._lo
    if lo + 1 < len(offs) and <Py_ssize_t>offs[lo + 1] <= s.base:
        lo = s_bisect(offs, s.base, lo) - 1
        s._lo = lo
        if lo > 1024 and lo * 2 > len(offs):
            del offs[:lo]
            del s._ts[:lo]
            s._lo = 0
    return 0


cdef int s_extend_lists(StreamCore s, object datas, object ts) except -1:
    """``ByteStream.extend_lists``: append a run of non-empty chunks with their times (the same marks as the
    reference for any lists, an empty one included: ``accumulate([], initial=total)`` still gives one)."""
    cdef bytearray buf = s.buf
    cdef list offs = s._offs
    cdef Py_ssize_t total = s.total
    if len(datas) == 1:
        s._ts.append(ts[0])
    else:
        s._ts.extend(ts)
        if not datas:
            offs.append(total)
            return 0
    for data in datas:
        offs.append(total)
        buf += data
        total += len(data)
    s.total = total
    return 0


cdef int _ba_add(bytearray dst, const char *src, Py_ssize_t n) except -1:
    """``dst += src[:n]`` without a temporary object."""
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(dst)
    if n <= 0:
        return 0
    PyByteArray_Resize(dst, old + n)
    memcpy(PyByteArray_AS_STRING(dst) + old, src, n)
    return 0


cdef int s_add_chunk(StreamCore s, bytes data, object t, Py_ssize_t consumed) except -1:
    """One chunk appended as ``extend_lists`` would, its first ``consumed`` bytes consumed where they lie (only
    when the buffer is empty): the stream is then what appending it and skipping them would leave."""
    cdef Py_ssize_t n = len(data)
    s._offs.append(s.total)
    s._ts.append(t)
    s.total += n
    if consumed:
        s.base += consumed
        s._scan = s._scan - consumed if s._scan > consumed else 0
    if consumed < n:
        _ba_add(s.buf, (<const char *>data) + consumed, n - consumed)
    return 0


cdef inline Py_ssize_t s_find_nl(StreamCore s) except -2:
    """``buf.find(b"\\n")``."""
    cdef bytearray buf = s.buf
    cdef char *data = PyByteArray_AS_STRING(buf)
    cdef char *p = <char *>memchr(data, 10, PyByteArray_GET_SIZE(buf))
    return -1 if p == NULL else p - data


cdef bint _all(object datas) except -1:
    """``all(datas)``, a list of bytes read in C."""
    if type(datas) is not list:
        return all(datas)
    for data in <list>datas:
        if type(data) is bytes:
            if not len(<bytes>data):
                return False
        elif not data:
            return False
    return True


# ---- what both parsers share --------------------------------------------------------------------------------
cdef class PendingCore:
    """``_stream.PendingBase``'s fields, typed."""

    cdef public Py_ssize_t index, bytes_up, bytes_down, sasl_turns, responses
    cdef public object command, t_sent, t_first_response, mechanism, missing


cdef class ParserCore:
    """ParserBase's fields the hot loops touch, typed; the feeding of runs in C."""

    cdef public bint keep_payloads, spans, closed, _greeted
    cdef public Py_ssize_t completed, continuations, _next_index, _nwarnings
    cdef public object _streams, _events, _opaque, _start_checked, unattributed, greeting, tls, _records, missing
    cdef StreamCore _su, _sd
    cdef Py_ssize_t _fed  # chunks of the run being fed that are in the stream
    cdef bint _safe  # reading a run before its end: stop where the reading would depend on what is buffered

    cdef int _process_c(self, bint up) except -1:
        raise NotImplementedError

    def feed_runs(self, runs, stop=None):
        """``ParserBase.feed_runs``, its common case in C."""
        cdef Py_ssize_t n = 0
        cdef StreamCore s
        cdef bint up
        checked = self._start_checked
        for direction, datas, ts in runs:
            n += 1
            if self.closed or self._opaque or not checked[direction] or not _all(datas):
                self.feed_lists(direction, datas, ts)
            else:
                up = direction == _UP
                s = self._su if up else self._sd
                if (not up and not self.keep_payloads and type(datas) is list and type(ts) is list
                        and len(datas) == len(ts)):
                    self._fed = 0
                    try:
                        self._down_chunks(s, datas, ts)
                        s_trim(s)
                    except Exception as exc:  # noqa: BLE001 - as the reference: never raise on input
                        s_extend_lists(s, datas[self._fed:], ts[self._fed:])  # what the reference had buffered
                        self._internal_error(exc)
                else:
                    s_extend_lists(s, datas, ts)
                    try:
                        self._process_c(up)
                        s_trim(s)
                    except Exception as exc:  # noqa: BLE001 - as the reference: never raise on input
                        self._internal_error(exc)
            if stop is not None and stop():
                break
        return n

    cdef int _down_chunks(self, StreamCore s, list datas, list ts) except -1:
        """The server's run, as ``extend_lists`` then ``_process_c`` would take it, read as its chunks come: a
        chunk that comes while the buffer is empty and the parser only counts what it reads (a literal, POP3
        data, without ``keep_payloads``) is counted where it lies, never copied into the buffer; after each
        chunk the whole lines buffered are read (``_safe``). Whatever depends on how much is buffered (a runaway
        line's pieces, looking for a line after a gap, a reply that lost bytes) and the switches that take the
        buffer whole (STARTTLS, STLS, COMPRESS) wait for the run's end, where the buffer is read as the
        reference reads it: so the same events come, in the same order, with the same times."""
        cdef Py_ssize_t k, n = len(datas)
        for k in range(n):
            data = datas[k]
            self._fed = k + 1
            if type(data) is not bytes:  # a bytearray or memoryview: appended as the reference does
                s._offs.append(s.total)
                s._ts.append(ts[k])
                s.buf += data
                s.total += len(data)
            elif PyByteArray_GET_SIZE(s.buf) == 0:
                self._chunk_in_place(s, data, ts[k])
            else:
                s_add_chunk(s, data, ts[k], 0)
            if k + 1 < n:
                self._safe = True
                try:
                    self._process_c(False)
                finally:
                    self._safe = False
        self._process_c(False)
        return 0

    cdef int _chunk_in_place(self, StreamCore s, bytes data, object t) except -1:
        s_add_chunk(s, data, t, 0)
        return 0

    def _process_up(self):
        self._process_c(True)

    def _process_down(self):
        self._process_c(False)


def _typed_streams(parser):
    """A new parser's streams (ParserBase made them of ``stream_type``: :class:`ByteStream`) as typed fields."""
    cdef ParserCore core = parser
    core._su, core._sd = core._streams[UP], core._streams[DOWN]


# ---- IMAP ------------------------------------------------------------------------------------------------------
cdef class ImapPending(PendingCore):
    """imap._Pending's fields, typed (an exchange being built)."""

    cdef public object tag, args, literals, ranges
    cdef public bint done, idle_done
    cdef public Py_ssize_t astrings

    def to_exchange(self, status, status_text, t_done, keep_payloads=True):
        return self._exchange_c(status, status_text, t_done, keep_payloads)

    cdef object _exchange_c(self, object status, object status_text, object t_done, bint keep_payloads):
        return _exchange(_IMAP, self.index, self.tag, self.command, "".join(self.args), status, status_text,
                         self.t_sent, self.t_first_response, t_done, self.bytes_up, self.bytes_down,
                         tuple(self.literals) if keep_payloads else (), b"", False, self.missing)


cdef ImapPending _imap_pending(Py_ssize_t index, str tag, str command, list args, object t_sent, Py_ssize_t nup):
    cdef ImapPending p = ImapPending.__new__(ImapPending)
    p.index = index
    p.command = command
    p.t_sent = t_sent
    p.bytes_up = nup
    p.bytes_down = 0
    p.t_first_response = None
    p.sasl_turns = 0
    p.mechanism = ""
    p.responses = 0
    p.missing = 0
    p.tag = tag
    p.args = args
    p.literals = []
    p.done = False
    p.idle_done = False
    p.astrings = 0
    p.ranges = None
    return p


cdef class ImapResponse:
    """imap._Response's fields (a server response being read)."""

    cdef public object start, t_start, first, nbytes, literals, junk, missing


cdef ImapResponse _imap_response(object start, object t_start):
    cdef ImapResponse r = ImapResponse.__new__(ImapResponse)
    r.start = start
    r.t_start = t_start
    r.first = b""
    r.nbytes = 0
    r.literals = []
    r.junk = False
    r.missing = 0
    return r


cdef bint _tagged_at(const char *d, Py_ssize_t n, Py_ssize_t *at):
    """Whether ``imap._TAGGED.match`` matches ``d[:n]``; where its groups lie: tag ``[0, at[0])``, status
    ``[at[1], at[2])``, text ``[at[3], at[4])`` (``at[3]`` -1: the text group did not take part)."""
    cdef Py_ssize_t i = 0, j, k, end
    while i < n and d[i] != 32 and d[i] != 13 and d[i] != 10:
        i += 1
    if i == 0 or i >= n or d[i] != 32:
        return False
    j = i + 1
    if n - j >= 2 and _ieq(d[j], 79) and _ieq(d[j + 1], 75):  # OK
        k = j + 2
    elif n - j >= 2 and _ieq(d[j], 78) and _ieq(d[j + 1], 79):  # NO
        k = j + 2
    elif n - j >= 3 and _ieq(d[j], 66) and _ieq(d[j + 1], 65) and _ieq(d[j + 2], 68):  # BAD
        k = j + 3
    else:
        return False
    # then " text" (lazy: it leaves the CR of a CRLF out) or nothing, and \r?\n at the very end
    if n >= 2 and d[n - 1] == 10 and d[n - 2] == 13 and n - 2 >= k:
        end = n - 2
    elif n >= 1 and d[n - 1] == 10 and n - 1 >= k:
        end = n - 1
    else:
        return False
    at[0], at[1], at[2], at[3], at[4] = i, j, k, -1, end
    if end == k:
        return True
    if d[k] != 32:
        return False
    at[3] = k + 1
    return True


cdef tuple _tagged(bytes line):
    """``imap._TAGGED.match(line).groups()``, or None when it does not match."""
    cdef Py_ssize_t at[5]
    if not _tagged_at(line, len(line), at):
        return None
    return line[:at[0]], line[at[1]:at[2]], None if at[3] < 0 else line[at[3]:at[4]]


cdef object _marker(bytes line):
    """``literal_marker(line)`` as (size, LITERAL+) instead of a match: (int, bool), or None. A line with a
    newline before its end takes the reference's own search."""
    cdef Py_ssize_t n = len(line), i, j, k
    cdef const char *d = line
    if n == 0 or memchr(d + (n - 4 if n > 4 else 0), 125, n if n < 4 else 4) == NULL:  # "}" in line[-4:]
        return None
    if n > 1 and memchr(d, 10, n - 1) != NULL:
        m = literal_marker(line)
        return None if m is None else (int(m.group(2)), bool(m.group(3)))
    i = n - 1
    while i >= 0 and d[i] != 123:  # the last "{"
        i -= 1
    if i < 0:
        return None
    j = i + 1
    while j < n and 48 <= d[j] <= 57:
        j += 1
    if j == i + 1 or j - i - 1 > 20:
        return None  # no digit, or more than 20
    k = j
    if k < n and d[k] == 43:  # "+"
        k += 1
    if k >= n or d[k] != 125:  # "}"
        return None
    k += 1
    if k == n or (n - k == 1 and d[k] == 10) or (n - k == 2 and d[k] == 13 and d[k + 1] == 10):
        return int(line[i + 1:j]), k - j == 2
    return None


cdef class ImapCore(ParserCore):
    """ImapParser's fields, typed, and its hot paths in C (see the module doc)."""

    cdef public list _outstanding
    cdef public object _cur, _up_literal, _up_literal_size, _up_skip_target, _up_secret, _resp, _down_literal
    cdef public object _up_drop, _gap_target
    cdef public bytearray _down_literal_buf
    cdef public bint _up_literal_sync, _resyncing, _resync_line_start

    cdef int _process_c(self, bint up) except -1:
        if up:
            return self._up_c()
        return self._down_c()

    # -- client ---------------------------------------------------------------------------------------------
    cdef int _up_c(self) except -1:
        cdef StreamCore s = self._su
        cdef bytearray buf = s.buf
        cdef Py_ssize_t start, i, n
        cdef ImapPending cur
        while PyByteArray_GET_SIZE(buf) and not self._opaque:
            if self._up_drop is not False:
                start = s.base
                i = s_find_nl(s)
                n = s_skip(s, PyByteArray_GET_SIZE(buf) if i < 0 else i + 1)
                target = self._up_drop if isinstance(self._up_drop, (ImapPending, _imap._Pending)) else None
                self._add_up_at(target, n, start, "the rest of a client line cut by a capture gap")
                if i >= 0:
                    self._up_drop = False
                continue
            if self._up_literal:
                start = s.base
                if self._up_secret is not None:
                    kind, index, marker = self._up_secret
                    self._up_secret = None
                    self._events.append(Span(kind, start, start + self._up_literal, index, "literal", marker))
                n = s_skip(s, self._up_literal)
                self._up_literal -= n
                if isinstance(self._cur, ImapPending) and not (<ImapPending>self._cur).done:
                    (<ImapPending>self._cur).bytes_up += n
                else:
                    self._add_up_at(self._cur, n, start, "literal of an unknown command")
                continue
            start = s.base
            line = s_line(s)
            if line is None:
                if not self._runaway_up(s):
                    return 0
                continue
            if self._cur is not None:
                self._command_continues(self._cur, line, start)
            else:
                self._client_line_c(line, start)
        return 0

    def _client_line(self, line, start):
        self._client_line_c(line, start)

    cdef int _client_line_c(self, bytes line, Py_ssize_t start) except -1:
        cdef ImapPending p
        cdef list outstanding = self._outstanding
        for x in outstanding:
            if (<ImapPending?>x).sasl_turns > 0:
                if self._sasl_reply(outstanding, "AUTHENTICATE", line, start):
                    return 0
                break
        cdef Py_ssize_t n = len(line), blen, i, rs, j, a
        cdef const char *d = line
        if _is_done(d, n):  # line.strip().upper() == b"DONE"
            for x in outstanding:
                p = x
                if p.command == "IDLE" and not p.idle_done:
                    p.idle_done = True
                    p.bytes_up += n
                    return 0
        m = _marker(line)
        # tag SP verb SP args, cut as body.partition(b" ") twice (body: the line without its line end)
        blen = _eol_len(d, n)
        i = _space(d, 0, blen)
        if i == 0:
            self._unattributed_at(_UP, n, start, "empty or untagged client line")
            return 0
        rs = i + 1 if i < blen else blen
        j = _space(d, rs, blen)
        a = j + 1 if j < blen else blen
        noverb = j == rs
        command = _decode(d, rs, j).upper()
        if command == "UID" and a < blen:
            j = _space(d, a, blen)
            command = f"UID {_decode(d, a, j).upper()}"
            a = j + 1 if j < blen else blen
        t = s_t_at(self._su, start)
        p = _imap_pending(self._next_index, _decode(d, 0, i), command, [_decode(d, a, blen)], t, n)
        self._next_index += 1
        outstanding.append(p)
        if noverb:
            self._warn(_UP, t, f"client line with tag {p.tag!r} but no command", start)
        if command in _SPAN_COMMANDS_IMAP or (self.spans and command in _UID_SET_COMMANDS):
            self._command_spans(p, line, start, a)
        if m is None:
            self._cur = None
        else:
            self._cur = p
            self._up_literal = self._up_literal_size = m[0]
            self._up_literal_sync = not m[1]
        return 0

    # -- server ---------------------------------------------------------------------------------------------
    cdef int _down_c(self) except -1:
        cdef StreamCore s = self._sd
        cdef bytearray buf = s.buf
        cdef bint keep = self.keep_payloads
        cdef Py_ssize_t start, n, ln
        cdef const char *d
        cdef bint brace, opens
        cdef ImapResponse r
        while PyByteArray_GET_SIZE(buf) and not self._opaque:
            if self._resyncing:
                if self._safe or not self._resync_step(s):
                    return 0
                continue
            if self._down_literal:
                resp = self._resp
                want = self._down_literal
                if keep:
                    data = s_take(s, want)
                    n = len(data)
                    if n == want and not self._down_literal_buf:
                        resp.literals.append(data)
                    else:
                        self._down_literal_buf += data
                        if n == want:
                            resp.literals.append(bytes(self._down_literal_buf))
                            del self._down_literal_buf[:]
                else:
                    n = s_skip(s, want)
                    if n == want:
                        resp.literals.append(b"")
                self._down_literal = want - n
                resp.nbytes += n
                continue
            if self._safe and self._switch_waits():
                return 0
            start = s.base
            line = s_line(s)
            if line is None:
                if self._safe or not self._runaway_down(s):
                    return 0
                continue
            ln = len(line)
            d = line
            resp = self._resp
            brace = ((ln >= 1 and d[ln - 1] == 125) or (ln >= 2 and d[ln - 2] == 125)
                     or (ln >= 3 and d[ln - 3] == 125))  # b"}" in line[-3:]
            opens = brace and d[0] == 42
            if resp is None:
                t_start = s_t_at(s, start)
                if not opens:  # a one-line response: no object for it
                    self._finish_c(start, t_start, line, ln, [], False, 0, s_t_at(s, start + ln - 1))
                    continue
                resp = self._resp = _imap_response(start, t_start)
            resp.nbytes += ln
            if not resp.first:
                resp.first = line
            if brace and not resp.junk and resp.first[:1] == b"*":
                m = _marker(line)
                if m is not None:
                    self._down_literal = m[0]
                    if not self._down_literal:
                        resp.literals.append(b"")
                    continue
            if type(resp) is ImapResponse:  # made here: its fields read directly
                r = <ImapResponse>resp
                self._resp = None
                self._finish_c(r.start, r.t_start, r.first, r.nbytes, r.literals, r.junk, r.missing,
                               s_t_at(s, start + ln - 1))
            else:
                self._finish_response(s_t_at(s, start + ln - 1))
        return 0

    cdef int _chunk_in_place(self, StreamCore s, bytes data, object t) except -1:
        """A chunk that starts inside a literal: its literal bytes are counted, not buffered (``_down_c``'s
        literal branch without ``keep_payloads``)."""
        cdef Py_ssize_t k, n = len(data)
        resp = self._resp
        want = self._down_literal
        if not want or self._resyncing or self._opaque or resp is None:
            return s_add_chunk(s, data, t, 0)
        k = n if want >= n else want
        s_add_chunk(s, data, t, k)
        if k == want:
            resp.literals.append(b"")
        self._down_literal = want - k
        resp.nbytes += k
        return 0

    cdef bint _switch_waits(self):
        """A STARTTLS or COMPRESS is outstanding: its OK would take the buffer whole (``_go_opaque``)."""
        for p in self._outstanding:
            command = (<ImapPending?>p).command
            if command == "STARTTLS" or command == "COMPRESS":
                return True
        return False

    def _finish_response(self, t_end):
        resp, self._resp = self._resp, None
        self._finish_c(resp.start, resp.t_start, resp.first, resp.nbytes, resp.literals, resp.junk, resp.missing,
                       t_end)

    cdef int _finish_c(self, object start, object t_start, bytes first, object nbytes, list literals, bint junk,
                       object missing, object t_end) except -1:
        """imap's ``_finish_response`` on a response's fields."""
        cdef list outstanding = self._outstanding
        cdef Py_ssize_t at[5]
        cdef const char *d
        if not self._greeted:
            self._greeted = True
            m = _GREETING.match(first) if not literals and not junk else None
            if m is not None:
                self.greeting = Greeting(_text(m.group(1)).upper(), _text(m.group(2) or b""), t_start, nbytes)
                self._events.append(self.greeting)
                return 0
            self._warn(_DOWN, t_start, "the server's first line is not a greeting", start)
        if junk:
            self._attr(self._oldest(), start, t_start, nbytes, literals, missing, "runaway server line")
            return 0
        c = first[:1]
        if c == b"*":
            target = (outstanding[0] if len(outstanding) == 1 else self._fetch_target(first) if outstanding
                      else None)
            self._attr(target, start, t_start, nbytes, literals, missing,
                       "untagged response with no command outstanding")
            return 0
        if c == b"+":
            self.continuations += 1
            target = self._continuation_target()
            if target is not None and target.command == "AUTHENTICATE" and target is not self._cur:
                target.sasl_turns += 1
            self._attr(target, start, t_start, nbytes, literals, missing,
                       "continuation request with no command outstanding")
            return 0
        if not _tagged_at(first, len(first), at):
            self._warn(_DOWN, t_start, f"unrecognized server line {_text(first[:60])!r}", start)
            self._attr(self._oldest(), start, t_start, nbytes, literals, missing,
                       "unrecognized server line with no command outstanding")
            return 0
        d = first
        tag = _decode(d, 0, at[0])
        for p in outstanding:
            if (<ImapPending?>p).tag == tag:
                break
        else:
            self._attr(None, start, t_start, nbytes, literals, missing,
                       f"tagged status for tag {tag!r} that is not outstanding")
            return 0
        self._attr(p, start, t_start, nbytes, literals, missing, "")
        self._complete_c(p, _decode(d, at[1], at[2]).upper(), "" if at[3] < 0 else _decode(d, at[3], at[4]), t_end)
        return 0

    def _attribute(self, p, resp, why):
        self._attr(p, resp.start, resp.t_start, resp.nbytes, resp.literals, resp.missing, why)

    cdef int _attr(self, object target, object start, object t_start, object nbytes, list literals, object missing,
                   str why) except -1:
        cdef ImapPending p
        if target is None:
            self.unattributed[_DOWN] += nbytes
            self._warn(_DOWN, t_start, f"{nbytes} bytes not attributed: {why}", start)
            return 0
        p = target
        p.bytes_down += nbytes
        p.missing += missing
        if literals:
            p.literals.extend(literals)
        if p.t_first_response is None:
            p.t_first_response = t_start
        return 0

    def _complete(self, p, status, text, t_done):
        self._complete_c(p, status, text, t_done)

    cdef int _complete_c(self, ImapPending p, object status, object text, object t_done) except -1:
        p.done = True
        self.completed += 1
        self._outstanding.remove(p)
        if p is self._cur and self._up_literal:
            if self._up_literal_sync and self._up_literal == self._up_literal_size:
                self._cur = None  # refused synchronizing literal: the client will not send it
                self._up_literal = 0
                self._up_secret = None
        self._events.append(p._exchange_c(status, text, t_done, self.keep_payloads))
        if status == "OK" and p.command == "STARTTLS":
            self._go_opaque("tls", t_done, "STARTTLS accepted")
        elif status == "OK" and p.command == "COMPRESS":
            self._go_opaque("compress", t_done, "COMPRESS accepted: the rest is compressed and only counted")
        return 0


class ImapParser(ImapCore, _imap.ImapParser):
    __doc__ = _imap.ImapParser.__doc__

    stream_type = ByteStream

    def __init__(self, max_line=_stream.MAX_LINE, keep_payloads=True, spans=False):
        _imap.ImapParser.__init__(self, max_line, keep_payloads, spans)
        _typed_streams(self)


# ---- POP3 ------------------------------------------------------------------------------------------------------
cdef class Pop3Pending(PendingCore):
    """pop3._Pending's fields, typed (an exchange being built)."""

    cdef public object arguments, status, status_text, data

    def to_exchange(self, status, t_done):
        return self._exchange_c(status, t_done)

    cdef object _exchange_c(self, object status, object t_done):
        return _exchange(_POP3, self.index, None, self.command, self.arguments, status, self.status_text,
                         self.t_sent, self.t_first_response, t_done, self.bytes_up, self.bytes_down, (),
                         bytes(self.data) if self.data else b"", self.data is not None, self.missing)


cdef bint _multiline(str command, str arguments) except -1:
    """``pop3.is_multiline``, its sets read once."""
    command = command.upper()
    if command in _ALWAYS_MULTILINE:
        return True
    return command in _MULTILINE_WITHOUT_ARGS and not arguments.strip()


cdef inline object _status_of(bytes line):
    """``pop3._status_of``: "+OK", "-ERR" or None."""
    cdef Py_ssize_t n = len(line)
    cdef const char *d = line
    if n >= 3 and d[0] == 43 and _ieq(d[1], 79) and _ieq(d[2], 75):
        if n == 3 or d[3] == 32 or d[3] == 13 or d[3] == 10 or d[3] == 9:
            return "+OK"
        return None
    if n >= 4 and d[0] == 45 and _ieq(d[1], 69) and _ieq(d[2], 82) and _ieq(d[3], 82):
        return "-ERR"
    return None


cdef class Pop3Core(ParserCore):
    """Pop3Parser's fields, typed, and its hot paths in C (see the module doc)."""

    cdef public object _fifo, _multi, _down_skip_target
    cdef public bint _line_start, _up_drop, _lossy, _after_gap, _resyncing, _resync_line_start

    cdef int _process_c(self, bint up) except -1:
        if up:
            return self._up_c()
        return self._down_c()

    cdef int _up_c(self) except -1:
        cdef StreamCore s = self._su
        cdef bytearray buf = s.buf
        cdef Py_ssize_t start, i, n
        while PyByteArray_GET_SIZE(buf) and not self._opaque:
            if self._up_drop:
                i = s_find_nl(s)
                n = s_skip(s, PyByteArray_GET_SIZE(buf) if i < 0 else i + 1)
                if self._fifo:
                    self._fifo[-1].bytes_up += n
                else:
                    self.unattributed[_UP] += n
                self._up_drop = i < 0
                continue
            start = s.base
            line = s_line(s)
            if line is None:
                if not self._runaway_up(s):
                    return 0
                continue
            self._line_up_c(line, start)
        return 0

    def _process_line_up(self, line, start):
        self._line_up_c(line, start)

    cdef int _line_up_c(self, bytes line, Py_ssize_t start) except -1:
        cdef Pop3Pending p
        fifo = self._fifo
        for x in fifo:
            if (<Pop3Pending?>x).sasl_turns > 0:
                if self._sasl_reply(fifo, "AUTH", line, start):
                    return 0
                break
        verb, _, args = _text(_strip_eol(line)).partition(" ")
        t = s_t_at(self._su, start)
        p = Pop3Pending.__new__(Pop3Pending)
        p.index = self._next_index
        p.command = verb.upper()
        p.t_sent = t
        p.bytes_up = len(line)
        p.bytes_down = 0
        p.t_first_response = None
        p.sasl_turns = 0
        p.mechanism = ""
        p.responses = 0
        p.missing = 0
        p.arguments = args
        p.status = None
        p.status_text = ""
        p.data = None
        self._next_index += 1
        fifo.append(p)
        if not verb:
            self._warn(_UP, t, "empty command line", start)
        if args and p.command in _SPAN_COMMANDS_POP3:
            self._command_spans(p, line, start)
        return 0

    cdef int _down_c(self) except -1:
        cdef StreamCore s = self._sd
        cdef bytearray buf = s.buf
        cdef Py_ssize_t start, end
        while PyByteArray_GET_SIZE(buf) and not self._opaque:
            if self._multi is not None:
                if self._lossy:
                    if self._safe or not self._read_multiline_lossy():
                        return 0
                elif not self._multiline_c():
                    return 0
                continue
            if self._resyncing:
                if self._safe or not self._resync_step(s):
                    return 0
                continue
            if self._safe and self._switch_waits():
                return 0
            start = s.base
            line = s_line(s)
            if line is None:
                if self._safe or not self._runaway_down(s):
                    return 0
                continue
            end = start + len(line) - 1
            self._reply_c(line, start, s_t_at(s, start), s_t_at(s, end))
        return 0

    cdef bint _switch_waits(self):
        """An STLS is waiting: its +OK would take the buffer whole (``_go_opaque``)."""
        for p in self._fifo:
            if (<Pop3Pending?>p).command == "STLS":
                return True
        return False

    def _reply_line(self, seg):
        self._reply_c(seg.data, seg.start, seg.t_start, seg.t_end)

    cdef int _reply_c(self, bytes line, Py_ssize_t start, object t_start, object t_end) except -1:
        cdef Pop3Pending p
        status = _status_of(line)
        if not self._greeted:
            self._greeted = True
            if status is not None:
                text = _text(_strip_eol(line)[len(status):].lstrip(b" "))
                self.greeting = Greeting(status, text, t_start, len(line))
                self._events.append(self.greeting)
                return 0
            self._warn(_DOWN, t_start, "the server's first line is not a greeting", start)
        fifo = self._fifo
        if not fifo:
            self.unattributed[_DOWN] += len(line)
            self._warn(_DOWN, t_start, f"{len(line)} bytes not attributed: reply with no command waiting", start)
            return 0
        p = fifo[0]
        p.bytes_down += len(line)
        if p.t_first_response is None:
            p.t_first_response = t_start
        if status is None:
            if line.startswith(b"+"):
                self.continuations += 1
            if line.startswith(b"+") and p.command == "AUTH":
                p.sasl_turns += 1
            else:
                self._warn(_DOWN, t_start, f"unrecognized reply line {_text(line[:60])!r} to {p.command}", start)
            return 0
        p.status = status
        p.status_text = _text(_strip_eol(line)[len(status):].lstrip(b" "))
        p.sasl_turns = 0
        if status == "+OK" and _multiline(p.command, p.arguments):
            p.data = bytearray()
            self._multi = p
            self._line_start = True
            return 0
        self._complete_c(p, t_end)
        return 0

    cdef Py_ssize_t _ml_scan(self, Pop3Pending p, const char *d, Py_ssize_t n, Py_ssize_t *end_out) except -1:
        """pop3's ``_read_multiline`` scan over ``d[:n]`` (data that starts where the reply's data goes on):
        how many bytes it consumes, and in ``end_out`` the offset just past the terminating line (-1: not yet).
        ``memchr`` jumps to each line end; a line that starts with a dot is the end line or a stuffed line."""
        cdef bint keep = self.keep_payloads
        cdef bytearray data = p.data
        cdef Py_ssize_t pos = 0, rest, i
        cdef const char *hit
        cdef bint line_start = self._line_start
        end_out[0] = -1
        while pos < n:
            if line_start and d[pos] == 46:  # "."
                rest = n - pos
                if rest >= 2 and d[pos + 1] == 10:
                    end_out[0] = pos + 2
                    break
                if rest >= 3 and d[pos + 1] == 13 and d[pos + 2] == 10:
                    end_out[0] = pos + 3
                    break
                if rest == 1 or (rest == 2 and d[pos + 1] == 13):
                    break  # cannot tell the end line from a stuffed line yet
                pos += 1  # dot-unstuffing: drop one leading dot
                line_start = False
                continue
            hit = <const char *>memchr(d + pos, 10, n - pos)
            while hit != NULL and hit + 1 < d + n and hit[1] != 46:
                hit = <const char *>memchr(hit + 1, 10, d + n - hit - 1)
            if hit == NULL or hit + 1 >= d + n:  # no "\n." in the rest
                if keep:
                    _ba_add(data, d + pos, n - pos)
                line_start = d[n - 1] == 10
                pos = n
                break
            i = hit - d + 1
            if keep:
                _ba_add(data, d + pos, i - pos)
            pos = i
            line_start = True
        if end_out[0] < 0:
            self._line_start = line_start
        return pos

    cdef bint _multiline_c(self) except -1:
        """pop3's ``_read_multiline``: True when the terminating line was read, False when more bytes are needed."""
        cdef StreamCore s = self._sd
        cdef Pop3Pending p = self._multi
        cdef Py_ssize_t end, pos
        pos = self._ml_scan(p, PyByteArray_AS_STRING(s.buf), PyByteArray_GET_SIZE(s.buf), &end)
        if end < 0:
            p.bytes_down += s_skip(s, pos)
            return False
        t_end = s_t_at(s, s.base + end - 1)
        p.bytes_down += s_skip(s, end)
        self._multi = None
        self._complete_c(p, t_end)
        return True

    cdef int _chunk_in_place(self, StreamCore s, bytes data, object t) except -1:
        """A chunk that starts inside multi-line data: scanned where it lies, only what follows the data is
        buffered (``_multiline_c`` without copying)."""
        cdef Pop3Pending p
        cdef Py_ssize_t end, pos
        if self._multi is None or self._lossy or self._opaque:
            return s_add_chunk(s, data, t, 0)
        p = self._multi
        pos = self._ml_scan(p, <const char *>data, len(data), &end)
        if end < 0:
            s_add_chunk(s, data, t, pos)
            p.bytes_down += pos
            return 0
        s_add_chunk(s, data, t, end)
        p.bytes_down += end
        self._multi = None
        self._complete_c(p, s_t_at(s, s.base - 1))
        return 0

    def _complete(self, p, t_done):
        self._complete_c(p, t_done)

    cdef int _complete_c(self, Pop3Pending p, object t_done) except -1:
        self.completed += 1
        fifo = self._fifo
        if fifo and fifo[0] is p:
            fifo.popleft()
        self._events.append(p._exchange_c(p.status, t_done))
        if p.status == "+OK" and p.command == "STLS":
            self._go_opaque("tls", t_done, "STLS accepted")
        return 0


class Pop3Parser(Pop3Core, _pop3.Pop3Parser):
    __doc__ = _pop3.Pop3Parser.__doc__

    stream_type = ByteStream

    def __init__(self, max_line=_stream.MAX_LINE, keep_payloads=True, spans=False):
        _pop3.Pop3Parser.__init__(self, max_line, keep_payloads, spans)
        _typed_streams(self)


def marker(line):
    """``literal_marker(line)``'s size and LITERAL+ flag as the compiled parser reads them, for the tests."""
    return _marker(bytes(line))


def tagged(line):
    """``imap._TAGGED.match(line)``'s groups as the compiled parser reads them, for the tests."""
    return _tagged(bytes(line))
