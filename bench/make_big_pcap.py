"""Write a big synthetic IMAP/POP3 pcap quickly, and optionally time the reader and reassembly on it.

Why: the speed goal (>= 300,000 packets/s for read + reassemble + parse on a 1,000,000-packet file, under
1 GB peak memory) needs a big capture that anyone can rebuild in seconds, without servers or privileges.
The sessions look like the real ones: handshake, greeting, commands, responses cut into 1448-byte segments,
delayed ACKs, FIN both ways; IMAP on port 143 and POP3 on port 110, alternating. Deterministic for a seed.

    python bench/make_big_pcap.py --packets 1000000 --out /tmp/big.pcap --measure

Not a test: speed numbers live here, never as timed asserts in tests/.
"""

from __future__ import annotations

import argparse
import random
import resource
import struct
import sys
import time

MSS = 1448
_PCAP_HDR = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)  # nanosecond pcap, Ethernet
_ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
_REC = struct.Struct("<IIII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")


class _Writer:
    def __init__(self, out) -> None:
        self.out = out
        self.parts: list[bytes] = []
        self.count = 0
        self.t_ns = 1_700_000_000 * 1_000_000_000

    def packet(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
               payload: bytes = b"", dt_ns: int = 20_000) -> None:
        self.t_ns += dt_ns
        tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        ip = _IP.pack(0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
        frame_len = 14 + 40 + len(payload)
        sec, ns = divmod(self.t_ns, 1_000_000_000)
        self.parts.append(_REC.pack(sec, ns, frame_len, frame_len) + _ETH + ip + tcp + payload)
        self.count += 1
        if len(self.parts) >= 4096:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.parts))
        self.parts.clear()


def _session(w: _Writer, rng: random.Random, n: int, imap: bool, budget: int) -> None:
    """One session of at most ``budget`` packets (roughly)."""
    cli = bytes([10, 1, (n >> 8) & 255, n & 255])
    srv = bytes([10, 0, 0, 1])
    cport = 20000 + n % 40000
    sport = 143 if imap else 110
    c_seq = rng.getrandbits(32)
    s_seq = rng.getrandbits(32)
    start = w.count

    def up(payload: bytes = b"", flags: int = 0x18) -> None:
        nonlocal c_seq
        w.packet(cli, srv, cport, sport, c_seq, s_seq, flags, payload)
        c_seq += len(payload)

    def down(payload: bytes = b"", flags: int = 0x18) -> None:
        nonlocal s_seq
        w.packet(srv, cli, sport, cport, s_seq, c_seq, flags, payload)
        s_seq += len(payload)

    def respond(data: bytes) -> None:
        for i in range(0, len(data), MSS):
            down(data[i:i + MSS])
            if (i // MSS) % 2 == 1:
                up(flags=0x10)
        up(flags=0x10)

    w.packet(cli, srv, cport, sport, c_seq, 0, 0x02)
    c_seq += 1
    w.packet(srv, cli, sport, cport, s_seq, c_seq, 0x12)
    s_seq += 1
    up(flags=0x10)
    respond(b"* OK [CAPABILITY IMAP4rev1] ready\r\n" if imap else b"+OK POP3 ready\r\n")
    k = 0
    while w.count - start < budget - 8:
        k += 1
        size = rng.choice((300, 800, 2000, 4000, 12000))
        body = (b"Subject: message %d\r\n\r\n" % k).ljust(size, b"x")
        if imap:
            up(b"a%d FETCH %d BODY[]\r\n" % (k, k))
            respond(b"* %d FETCH (BODY[] {%d}\r\n" % (k, len(body)) + body + b")\r\na%d OK FETCH done\r\n" % k)
        else:
            up(b"RETR %d\r\n" % k)
            respond(b"+OK %d octets\r\n" % len(body) + body + b"\r\n.\r\n")
    up(b"a0 LOGOUT\r\n" if imap else b"QUIT\r\n")
    respond(b"* BYE\r\na0 OK LOGOUT done\r\n" if imap else b"+OK bye\r\n")
    w.packet(srv, cli, sport, cport, s_seq, c_seq, 0x11)
    s_seq += 1
    w.packet(cli, srv, cport, sport, c_seq, s_seq, 0x11)
    c_seq += 1
    w.packet(srv, cli, sport, cport, s_seq, c_seq, 0x10)


def make(path: str, packets: int, seed: int = 1) -> int:
    """Write about ``packets`` packets (a few more, to finish the last session); return the count."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.write(_PCAP_HDR)
        w = _Writer(out)
        n = 0
        while w.count < packets:
            _session(w, rng, n, imap=n % 2 == 0, budget=min(400, max(20, packets - w.count)))
            n += 1
        w.flush()
    return w.count


def measure(path: str) -> None:
    from collections import deque

    from mailstudy.net.pcap import PcapStats, read_tcp, read_tcp_tuples
    from mailstudy.net.reassembly import reassemble_tuples

    for name, reader in (("read_tcp (TcpPacket)", read_tcp), ("read_tcp_tuples", read_tcp_tuples)):
        stats = PcapStats()
        t0 = time.perf_counter()
        deque(reader(path, stats), 0)
        t1 = time.perf_counter()
        n = stats.tcp_packets
        print(f"read only, {name}: {n:,} packets in {t1 - t0:.2f} s = {n / (t1 - t0):,.0f} packets/s")
    stats = PcapStats()
    t0 = time.perf_counter()
    conns = reassemble_tuples(read_tcp_tuples(path, stats))
    t1 = time.perf_counter()
    n = stats.tcp_packets
    nbytes = sum(c.bytes_up + c.bytes_down for c in conns)
    print(f"read + reassemble:  {n:,} packets in {t1 - t0:.2f} s = {n / (t1 - t0):,.0f} packets/s "
          f"({len(conns):,} connections, {nbytes / 1e6:,.0f} MB of stream)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--out", default="/tmp/mailstudy-big.pcap")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--measure", action="store_true", help="time the reader and reassembly on the file")
    ap.add_argument("--no-write", action="store_true", help="only measure an existing file")
    a = ap.parse_args(argv)
    if not a.no_write:
        t0 = time.perf_counter()
        n = make(a.out, a.packets, a.seed)
        print(f"wrote {n:,} packets to {a.out} in {time.perf_counter() - t0:.1f} s")
    if a.measure:
        measure(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
