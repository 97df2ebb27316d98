"""mailstudy: measure what IMAP and POP3 really cost, with real servers, real clients and real captures.

The package is layered as docs/design.md draws it, one folder a room, and a lower layer never imports a higher one
(``tests/test_layers.py``):

- pure: :mod:`mailstudy.wire` (the shared nouns: direction, chunk, flight, session metrics), :mod:`mailstudy.corpus`
  (mail in), :mod:`mailstudy.protocol` (parsers, IMAP lexer, mail classifier, metrics);
- I/O: :mod:`mailstudy.net` (pcap, reassembly), :mod:`mailstudy.servers`, :mod:`mailstudy.capture`,
  :mod:`mailstudy.outputs`, :mod:`mailstudy.live.trace`;
- behaviour: :mod:`mailstudy.live` (clients, access strategies, devices), :mod:`mailstudy.offline` (analyze,
  redact, replay);
- orchestration: :mod:`mailstudy.study` (experiments, sweeps, notebooks);
- faces: :mod:`mailstudy.cli`, :mod:`mailstudy.faces` (plots, ladders, charts, examples).
"""

__version__ = "0.2.0"
