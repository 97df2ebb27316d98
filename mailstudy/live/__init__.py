"""Behaviour: drive Python's own imaplib and poplib against a real server over a traced socket (trace, clients, access strategies, devices)."""
