"""The explorer as a page with no install: built with ``make explorer-site``'s steps, opened from disk (file://) in
Debian's chromium, a capture picked and one uploaded, the table, an exchange's text and the SVG ladder checked.

The page runs mailstudy's own reader and parsers in Pyodide (the npm ``pyodide`` package, fetched with ``npm
pack`` into build/npm once). Without npm, the registry or chromium the test skips and says why; under CI it must
run (.ci/run installs npm and chromium).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from needs import skip_or_fail
from peers import PEER

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
PYODIDE = "314.0.8"  # as the Makefile's PYODIDE
READY_S = 120

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def pyodide_tgz() -> Path:
    tgz = BUILD / "npm" / f"pyodide-{PYODIDE}.tgz"
    if tgz.exists():
        return tgz
    if not shutil.which("npm"):
        skip_or_fail("npm is not installed (apt-get install npm); the page needs the npm pyodide package")
    tgz.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["npm", "pack", f"pyodide@{PYODIDE}", "--silent"], cwd=tgz.parent, capture_output=True,
                         text=True, timeout=300)
    if out.returncode or not tgz.exists():
        skip_or_fail(f"npm pack pyodide@{PYODIDE} failed: {out.stderr.strip()[-300:]}")
    return tgz


@pytest.fixture(scope="module")
def site(pyodide_tgz, tmp_path_factory) -> Path:
    from mailstudy.faces.static_site import build_site

    return build_site(tmp_path_factory.mktemp("site"), pyodide_tgz)


def test_the_site_holds_what_the_page_loads(site):
    names = {p.name for p in site.iterdir()}
    assert {"index.html", "site.js", "pyodide.js", "runtime.js", "modules.js", "captures.js"} <= names
    captures = (site / "captures.js").read_text()
    assert "pop3-keep" in captures and "imaps" not in captures  # a TLS example cannot be opened in the page
    html = (site / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing is loaded from the network


def test_the_page_opens_from_disk_and_reads_captures(site, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((site / "index.html").as_uri())
    page.wait_for_function("() => document.body.dataset.ready === 'yes' || "
                           "document.querySelector('.ms-error').textContent", timeout=READY_S * 1000)
    assert page.locator(".ms-error").inner_text() == "", page.locator(".ms-error").inner_text()
    page.locator(".ms-capture").select_option("pop3-keep")
    page.locator(".ms-exchanges").filter(has_text="RETR").wait_for(timeout=READY_S * 1000)
    table = page.locator(".ms-exchanges").inner_text()
    assert "12 commands" in table and "31,149 B down" in table and "5,140" in table  # as mailstudy analyze
    assert page.locator(".ms-ladder line.ms-arrow").count() == 25  # the greeting and 12 commands with replies
    page.locator(".ms-exchange").select_option("2")
    text = page.locator(".ms-exchange-text").inner_text()
    assert "PASS ***" in text and "+OK" in text
    page.screenshot(path=str(BUILD / "explorer-site-example.png"), full_page=True)

    page.locator(".ms-upload").set_input_files(files=[{"name": "notes.pcap", "mimeType": "text/plain",
                                                       "buffer": b"a text file, not a capture\n" * 3}])
    page.locator(".ms-error").filter(has_text="notes.pcap").wait_for(timeout=READY_S * 1000)
    assert "not a pcap or pcapng file" in page.locator(".ms-error").inner_text()
    assert page.locator(".ms-exchanges").inner_text() == ""  # nothing of pop3-keep under the error
    page.locator(".ms-upload").set_input_files(str(PEER / "pop3.pcap"))
    page.locator(".ms-status").filter(has_text="pop3.pcap").wait_for(timeout=READY_S * 1000)
    assert page.locator(".ms-session").input_value() == "6"  # the busiest session, not the empty #0
    assert "[empty]" in page.locator(".ms-session option").first.inner_text()
    page.screenshot(path=str(BUILD / "explorer-site-upload.png"), full_page=True)
    assert errors == []
    assert all(u.startswith(("file:", "blob:", "data:")) for u in requests), requests
    page.close()


@pytest.fixture(scope="module")
def browser():
    from test_explorer_browser import CHROMIUM, CHROMIUM_ARGS, _why_no_browser

    why = _why_no_browser()
    if why:
        skip_or_fail(why)
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
