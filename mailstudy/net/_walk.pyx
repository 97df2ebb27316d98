# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled walk of a classic pcap straight into reassembly: the analysis's fast path (issue 21, item 2).

Why: on the bench capture, reading records, decoding Ethernet/IPv4/TCP and reassembling cost about 1.5 us of
Python per packet in the pure modules (:mod:`mailstudy.net.pcap`, :mod:`mailstudy.net.pcap_batches`,
:mod:`mailstudy.net.reassembly`), most of the no-parser floor. Here one C loop walks the records of a read
buffer, decodes the fast-path frame (link header, IPv4 without options, TCP; the reader's own test, the
reader's own layouts), and moves the common segment (known connection, no SYN/FIN/RST, not cut, data in order,
nothing buffered) into its connection with C arithmetic on a shadow of that connection's state. Per packet that
carries data it makes only what the reference makes: the chunk tuple ``(direction, t, bytes)``.

Exactly the reference, by construction: every packet the C loop does not take on its own (a record the fast
path cannot decode, a SYN/FIN/RST, a cut segment, an unknown connection, data out of order, anything buffered
on either side) goes through the reference itself, after the shadows are written back: an undecoded record is
read by :meth:`mailstudy.net.pcap.PcapReader.record_tuples` (the reader's tuples, warnings and counts), and the
packet is fed with :meth:`mailstudy.net.reassembly.Reassembler.feed` (the reference's own rules). Batches end
after the same number of TCP packets as the reference's, so the hand-overs to the parsers fall at the same
packets. Times are ``t_ns / 1e9`` correctly rounded, as Python's ``int / int`` makes them (:c:func:`ns_to_s`).
tests/test_compiled_walk.py compares every field with the pure path. ``mailstudy.compiled.compiled_module``
decides whether this module is used (``MAILSTUDY_PURE=1``: never).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_Append
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove

from mailstudy.net.pcap import address_pair, warn_corrupt_record, warn_cut_record

cdef extern from *:
    """
    #include <math.h>
    /* t_ns / 1e9 rounded once, half to even: what Python's int / int gives (a double division would round
       t_ns first: about 1.7e18 needs 61 bits). m = t_ns * 2^s / 1e9 is brought into [2^52, 2^53). */
    static double ms_ns_to_s(uint64_t t_ns) {
        if (t_ns == 0) return 0.0;
        int e;
        frexp((double)t_ns / 1e9, &e);
        int s = 53 - e;
        for (int tries = 0; tries < 4; tries++) {
            unsigned __int128 num = s >= 0 ? ((unsigned __int128)t_ns) << s : ((unsigned __int128)t_ns) >> (-s);
            unsigned __int128 q = num / 1000000000u, r = num % 1000000000u;
            if (q >= ((unsigned __int128)1 << 53)) { s -= 1; continue; }
            if (q < ((unsigned __int128)1 << 52)) { s += 1; continue; }
            if (r * 2 > 1000000000u || (r * 2 == 1000000000u && (q & 1))) q += 1;
            return ldexp((double)(uint64_t)q, -s);
        }
        return (double)t_ns / 1e9; /* not reached for any 64-bit time */
    }
    """
    double ns_to_s "ms_ns_to_s"(uint64_t t_ns) nogil

cdef enum:
    SLOTS = 1024  # connection-key cache (direct mapped, 10 bits of a hash); a miss costs one Python lookup
    MAX_RECORD = 1 << 26  # as mailstudy.net.pcap's: a longer record means a corrupt length field
    BLOCK = 2 << 20  # bytes read at a time


def exact_seconds(uint64_t t_ns):
    """``t_ns / 1_000_000_000`` as this module computes it (tests compare it with Python's division)."""
    return ns_to_s(t_ns)


cdef inline uint32_t be16(const uint8_t* p) nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint32_t rd32(const uint8_t* p, bint big) nogil:
    if big:
        return be32(p)
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef class _Shadow:
    """One connection's reassembly state while the C loop moves its segments (written back by ``flush``)."""

    cdef object conn
    cdef list chunks
    cdef tuple dirs, names
    cdef int64_t nxt[2]
    cdef int64_t start_next[2]
    cdef uint64_t base[2]
    cdef bint base_none[2]
    cdef bint pending[2]
    cdef bint fin[2]
    cdef uint32_t ack[2]
    cdef bint ack_set[2]
    cdef int64_t packets
    cdef uint64_t t_last_ns

    cdef void load(self, object c, object d, object o):
        self.conn = c
        self.chunks = c.chunk_tuples
        self.dirs = (d, o)
        self.names = (d.name, o.name)
        cdef int i
        for i in range(2):
            x = self.dirs[i]
            self.nxt[i] = self.start_next[i] = x.next
            b = x.base
            self.base_none[i] = b is None
            self.base[i] = 0 if b is None else b
            self.pending[i] = bool(x.pending)
            self.fin[i] = x.fin is not None
            self.ack_set[i] = False
        self.packets = 0

    cdef void flush(self):
        cdef int i
        for i in range(2):
            if self.nxt[i] != self.start_next[i]:
                self.dirs[i].next = self.nxt[i]
            if self.ack_set[i]:
                self.dirs[i].ack = self.ack[i]
        if self.packets:
            c = self.conn
            c.packets = c.packets + self.packets
            c.t_last = ns_to_s(self.t_last_ns)
        self.conn = self.chunks = self.dirs = self.names = None


cdef class Walker:
    """A classic pcap's records walked in C into a :class:`~mailstudy.net.reassembly.Reassembler`, ``batch``
    TCP packets per :meth:`feed` (the reader's ``walk_layout`` says whether a file can be walked)."""

    cdef object reader, stats
    cdef list shadows  # the shadows of the connections the loop moves segments of, since the last hand-back
    cdef dict shadow_at  # id(connection) -> its shadow's place in shadows
    cdef bytearray buf  # the records read and not walked yet, from pos to n (one buffer, reused)
    cdef const uint8_t* p
    cdef Py_ssize_t pos, n
    cdef int64_t base, index
    cdef bint big, done
    cdef uint64_t frac_ns
    cdef Py_ssize_t hlen, linklen, minlen, batch
    cdef uint32_t mask, want
    cdef bint word32
    cdef uint32_t gen
    cdef uint32_t slot_gen[SLOTS]
    cdef uint8_t slot_key[SLOTS][12]
    cdef int slot_shadow[SLOTS]
    cdef int slot_dir[SLOTS]

    def __init__(self, reader, int batch):
        layout = reader.walk_layout()
        if layout is None:
            raise ValueError("not a classic pcap with a fast-path link type")
        head, pos, endian, frac_ns, hlen, _linktype, linklen, mask, want = layout
        self.reader = reader
        self.stats = reader.stats
        self.buf = bytearray(head)
        self.p = <const uint8_t*>PyByteArray_AS_STRING(self.buf)
        self.n = len(head)
        self.pos = pos
        self.base = 0
        self.index = 0
        self.big = endian == ">"
        self.frac_ns = frac_ns
        self.hlen = hlen
        self.linklen = linklen
        self.minlen = linklen + 40
        self.mask = mask
        self.want = want
        self.word32 = mask > 0xFFFF  # the first word is EtherType + version/IHL + TOS (else version/IHL + TOS)
        self.batch = max(1, batch)
        self.done = False
        self.gen = 1
        self.shadows = []
        self.shadow_at = {}
        cdef int i
        for i in range(SLOTS):
            self.slot_gen[i] = 0

    cdef void _forget(self):
        """Write every shadow back and drop the key cache: the reference is about to see the state."""
        cdef _Shadow sh
        for sh in self.shadows:
            sh.flush()
        self.shadows = []
        self.shadow_at = {}
        self.gen += 1

    cdef bint _read_on(self, int64_t end) except -1:
        """The buffer ends inside the record at ``pos``: read on; False at the end of the file (warned)."""
        cdef Py_ssize_t left = self.n - self.pos
        cdef bint have_header = left >= self.hlen
        cdef uint32_t incl = rd32(self.p + self.pos + 8, self.big) if have_header else 0
        if have_header and incl > MAX_RECORD:  # the same warnings as the reader's
            warn_corrupt_record(self.stats, self.index + 1, incl)
            return False
        cdef Py_ssize_t want = max(BLOCK, end - self.n), got
        memmove(<void*>self.p, self.p + self.pos, left)  # the chunks are copies: the buffer is free to reuse
        self.base += self.pos
        self.pos = 0
        self.n = left
        if len(self.buf) < left + want:
            self.buf.extend(bytes(left + want - len(self.buf)))
            self.p = <const uint8_t*>PyByteArray_AS_STRING(self.buf)
        got = self.reader.read_into(memoryview(self.buf)[left:left + want])
        if not got:
            warn_cut_record(self.stats, self.index + 1, left, self.hlen, incl)
            return False
        self.n = left + got
        return True

    cdef _tuple(self, Py_ssize_t ip, uint64_t t_ns, uint32_t incl, uint32_t orig, Py_ssize_t doff,
                Py_ssize_t plen):
        """The reader's tuple of the fast-path packet at ``ip`` (PACKET_FIELDS order); the fast path's records
        hold their whole IP packet, so it is never ``truncated``."""
        cdef const uint8_t* q = self.p + ip
        src, dst = address_pair(PyBytes_FromStringAndSize(<const char*>q + 12, 8))
        payload = PyBytes_FromStringAndSize(<const char*>q + 20 + doff, plen)
        return (ns_to_s(t_ns), src, be16(q + 20), dst, be16(q + 22), be32(q + 24), be32(q + 28),
                be16(q + 32) & 0x1FF, payload, orig, incl, False, self.index, t_ns, self.base + ip + 20)

    cdef void _delegate(self, r, tup) except *:
        self._forget()
        r.feed((tup,))

    cdef int _shadow_of(self, r, Py_ssize_t ip, int h) except -2:
        """Fill key slot ``h`` for the packet at ``ip`` (its shadow and direction); -1: unknown connection."""
        cdef const uint8_t* q = self.p + ip
        src, dst = address_pair(PyBytes_FromStringAndSize(<const char*>q + 12, 8))
        ent = r.table.fast.get((src, be16(q + 20), dst, be16(q + 22)))
        if ent is None:
            return -1
        c, d, o = ent
        cdef _Shadow sh
        cdef int i, di = 0
        found = self.shadow_at.get(id(c))  # (a TcpConnection compares by value: it is no dict key itself)
        if found is not None:
            i = found
            sh = <_Shadow>self.shadows[i]
            di = 0 if sh.dirs[0] is d else 1
        else:
            i = len(self.shadows)
            sh = _Shadow()
            sh.load(c, d, o)
            self.shadows.append(sh)
            self.shadow_at[id(c)] = i
        memcpy(self.slot_key[h], q + 12, 12)
        self.slot_gen[h] = self.gen
        self.slot_shadow[h] = i
        self.slot_dir[h] = di
        return 0

    def feed(self, r):
        """Walk up to ``batch`` TCP packets into ``r``; return how many (0: the file is done)."""
        if self.done:
            return 0
        cdef Py_ssize_t fed = 0, fast_count = 0, fast_trunc = 0, start, ip, rec, doff = 0, plen
        cdef int64_t end
        # (the zeros only quiet Cython's flow analysis: a record's fields are always read before they are used)
        cdef uint32_t sec = 0, frac = 0, incl = 0, orig = 0, w1, totlen = 0, w2, of = 0, seq, flags
        cdef uint64_t t_ns, last_ns = 0
        cdef const uint8_t* q
        cdef int h, di, oi
        cdef _Shadow sh
        cdef bint walk = r.table.on_segment is None
        cdef object last_t = None
        cdef int last_kind = 0  # the last TCP packet's time: 1 in last_ns, 2 in last_t
        self.gen += 1
        try:
            while fed < self.batch:
                if self.n - self.pos >= self.hlen:
                    q = self.p + self.pos
                    sec = rd32(q, self.big)
                    frac = rd32(q + 4, self.big)
                    incl = rd32(q + 8, self.big)
                    orig = rd32(q + 12, self.big)
                    end = self.pos + self.hlen + incl
                else:
                    end = self.n + 1
                if end > self.n:
                    if not self._read_on(end):
                        self.done = True
                        break
                    continue
                rec = self.pos
                start = rec + self.hlen
                self.pos = end
                self.index += 1
                ip = start + self.linklen
                t_ns = <uint64_t>sec * 1000000000u + <uint64_t>frac * self.frac_ns
                if incl >= self.minlen:
                    q = self.p + ip
                    w1 = be32(q - 2) if self.word32 else be16(q)
                    totlen = be16(q + 2)
                    w2 = be32(q + 6)
                    of = be16(q + 32)
                    doff = (of >> 12) << 2
                    if not ((w1 & self.mask) == self.want and (w2 & 0x3FFF00FF) == 6 and doff >= 20
                            and 20 + doff <= totlen and totlen <= incl - self.linklen):
                        q = NULL
                else:
                    q = NULL
                if q == NULL:  # not the fast-path frame: the reader reads this record (tuples, warnings, counts)
                    tups = self.reader.record_tuples(PyBytes_FromStringAndSize(<const char*>self.p + rec, end - rec),
                                                     self.index - 1, self.base + rec)
                    for tup in tups:
                        fed += 1
                        last_t = tup[0]
                        last_kind = 2
                        self._delegate(r, tup)
                    continue
                fed += 1
                fast_count += 1
                if incl < orig:
                    fast_trunc += 1
                last_ns = t_ns
                last_kind = 1
                flags = of & 0x1FF
                plen = totlen - 20 - doff
                if not walk or flags & 7:
                    self._delegate(r, self._tuple(ip, t_ns, incl, orig, doff, plen))
                    continue
                h = (be32(q + 12) * 2654435761u ^ be32(q + 16) * 40503u ^ be32(q + 20) * 2246822519u) >> 22
                if self.slot_gen[h] != self.gen or memcmp(self.slot_key[h], q + 12, 12) != 0:
                    if self._shadow_of(r, ip, h) < 0:
                        self._delegate(r, self._tuple(ip, t_ns, incl, orig, doff, plen))
                        continue
                sh = <_Shadow>self.shadows[self.slot_shadow[h]]
                di = self.slot_dir[h]
                oi = 1 - di
                seq = be32(q + 24)
                if plen:
                    if (sh.pending[di] or sh.fin[di] or sh.base_none[di]
                            or <uint32_t>(seq - sh.base[di] - <uint64_t>sh.nxt[di]) != 0):
                        self._delegate(r, self._tuple(ip, t_ns, incl, orig, doff, plen))
                        continue
                elif sh.base_none[di]:
                    self._delegate(r, self._tuple(ip, t_ns, incl, orig, doff, plen))
                    continue
                if flags & 0x10 and sh.pending[oi]:  # the reference checks the acknowledged bytes: let it
                    self._delegate(r, self._tuple(ip, t_ns, incl, orig, doff, plen))
                    continue
                if plen:
                    sh.nxt[di] += plen
                    PyList_Append(sh.chunks, (sh.names[di], ns_to_s(t_ns),
                                              PyBytes_FromStringAndSize(<const char*>q + 20 + doff, plen)))
                sh.packets += 1
                sh.t_last_ns = t_ns
                if flags & 0x10:
                    sh.ack[oi] = be32(q + 28)
                    sh.ack_set[oi] = True
        finally:
            self._forget()
            st = self.stats
            st.packets_total += fast_count
            st.tcp_packets += fast_count
            st.truncated_records += fast_trunc
            if last_kind == 1:
                r.t_now = ns_to_s(last_ns)
            elif last_kind == 2:
                r.t_now = last_t
            if self.done:
                self.reader.close()
        return fed
