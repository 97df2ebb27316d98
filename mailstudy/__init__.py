"""mailstudy: measure what IMAP and POP3 really cost, with real servers, real clients and real captures.

The package is layered (see DESIGN.md in the steering repo): pure modules (corpus, protocol, metrics) compute;
I/O modules (trace, servers) own sockets and processes; behaviour modules (access) drive the stdlib clients;
orchestration (experiment) turns parameters into tidy rows; faces (cli, plots) show them.
"""

__version__ = "0.1.0"
