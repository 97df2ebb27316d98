"""The command line (faces layer): ``mailstudy COMMAND``; see :mod:`mailstudy.cli.commands`."""

from mailstudy.cli.commands import main

__all__ = ["main"]
