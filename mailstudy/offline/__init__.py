"""Behaviour on capture files: analyze any IMAP/POP3 pcap, redact its credentials, replay it on a fresh server."""
