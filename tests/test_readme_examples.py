"""The README's command examples run as printed, and so do the examples in ``--help``.

The examples are read from the README's ```sh blocks (every line that runs ``.venv/bin/mailstudy``), so an
edited example is tested as edited. Those that take seconds run here, in order (``redact s.pcap`` reads what
the ``--capture s.pcap`` example wrote), each in a fresh folder with ``captures/`` beside it and the project
root there too (so the fleet's cache lands in the test's folder, not the checkout). Those that run until stopped
or take minutes are listed in :data:`NOT_RUN_HERE` with where they are tested; a new example must be one or the
other.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from cli_run import run

from mailstudy.cli.commands import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ".venv/bin/mailstudy"

#: Examples not run here (the start of the command line after ``mailstudy``), and why.
NOT_RUN_HERE = {
    "serve": "runs until stopped; tests/test_bad_inputs.py and test_lifetimes.py start and stop it",
    "study": "executes notebooks for minutes; tests/test_notebooks.py runs them",
    "explore": "serves until stopped; tests/test_explorer_browser.py drives it in a browser",
    "calibrate": "runs seven real clients and their profiles three times each, for minutes; tests/test_calibrate.py "
                 "runs the command and checks its table",
}


def readme_examples() -> list[list[str]]:
    """Each ``.venv/bin/mailstudy ...`` line of the README's ```sh blocks, as argv after the program."""
    text = (ROOT / "README.md").read_text()
    examples = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            if line.startswith(PROGRAM + " "):
                argv = shlex.split(line, comments=True)
                examples.append(argv[1:])
    return examples


def _fast(argv: list[str]) -> bool:
    return argv[0] not in NOT_RUN_HERE


def test_the_readme_has_examples_of_every_subcommand_it_documents():
    examples = readme_examples()
    assert len(examples) >= 15
    assert {a[0] for a in examples} <= set(COMMANDS)


def test_the_fast_readme_examples_run_as_printed(tmp_path):
    if not shutil.which("dovecot") and not Path("/usr/sbin/dovecot").exists():
        pytest.skip("two examples use --server dovecot; apt-get install dovecot-imapd dovecot-pop3d")
    (tmp_path / "captures").symlink_to(ROOT / "captures")
    env = {**os.environ, "MAILSTUDY_ROOT": str(tmp_path)}
    ran = 0
    for argv in filter(_fast, readme_examples()):
        out = run(*argv, cwd=tmp_path, env=env, timeout=600)
        assert out.returncode == 0, (argv, out.stderr[-2000:])
        assert "Traceback" not in out.stderr and out.stdout.strip(), argv
        ran += 1
    assert ran >= 12
    assert (tmp_path / "s-redacted.pcap").stat().st_size == (tmp_path / "s.pcap").stat().st_size


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_subcommand(command):
    out = run(command, "--help", timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith(f"usage: mailstudy {command}")


def test_every_e_g_value_in_help_is_accepted_by_its_option():
    """``--poll ... e.g. 10m``, ``--rtt ... e.g. 80ms, 0.08s``: what the help suggests, the option takes."""
    parser = build_parser()
    positionals = {"analyze": ["x.pcap"], "replay": ["x.pcap"], "redact": ["a.pcap", "b.pcap"]}
    checked = 0
    subparsers = next(a for a in parser._actions if a.dest == "command").choices  # argparse keeps them here
    for name, sub in subparsers.items():
        for action in sub._actions:
            m = re.search(r"e\.g\. ([^()]+?)(?:\(|$)", action.help or "")
            if not m or not action.option_strings:
                continue
            for value in re.findall(r"[\w.@]+", m.group(1)):
                parser.parse_args([name, *positionals.get(name, []), action.option_strings[0], value])
                checked += 1
    assert checked >= 6
