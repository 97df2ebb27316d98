"""The pcap explorer (notebook 05) driven in a real browser: Debian's chromium, headless, through Playwright.

Two faces are tested the way a student meets them: JupyterLab (open 05, run it, act on the widgets) and
``mailstudy explore`` (Voilà). Each picks an example capture and a session, checks that the exchanges table and
the ladder image changed, uploads a file that is not a pcap and checks the one-line error, and saves
screenshots under ``build/``. Galata (JupyterLab's own UI tests) is the model: open, run, act, wait for the
output, screenshot. Without chromium or Playwright the tests skip and say why; under CI they must run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from needs import skip_or_fail
from peers import PEER

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BAD_UPLOAD = b"this is a text file, not a capture\n" * 4
READY_S = 120  # a cold kernel on a busy 2-core machine; waits, never a timed assert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _why_no_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return "no chromium binary (apt-get install chromium; .ci/run installs it)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _why_no_browser()
    if why:
        skip_or_fail(why)  # under CI (which installs chromium) a missing browser fails the test
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def workspace(tmp_path):
    """A private copy of notebook 05 and the example captures: Jupyter may autosave outputs into it."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "05-pcap-explorer.ipynb", tmp_path / "notebooks")
    shutil.copytree(ROOT / "captures", tmp_path / "captures")
    BUILD.mkdir(exist_ok=True)
    return tmp_path


def _free_port() -> int:
    from mailstudy.servers.base import free_port

    return free_port()


def _wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    """Wait until the server accepts connections (a GET would make Voilà start a kernel per try)."""
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"nothing listened on 127.0.0.1:{port} within {READY_S} s: {log.read_text()[-2000:]}")


#: JupyterLab's kernels over Unix sockets: over TCP, jupyter_client picks free ports, closes them and lets the
#: kernel bind them, and a process started beside it could take one first (a kernel died at start on "Address
#: already in use" once). The sockets live in the runtime folder, which _start keeps short (108-byte limit).
LAB_KERNELS_OVER_IPC = "--KernelManager.transport=ipc"


def _start(argv: list[str], cwd: Path, port: int, log: Path) -> subprocess.Popen:
    from mailstudy.processes import SHORT_TEMP, owned_tempdir

    (cwd / "tmp").mkdir(exist_ok=True)
    runtime = owned_tempdir("runtime", dir=SHORT_TEMP)  # pytest's tmp_path is too long for a kernel's sockets
    env = {**os.environ, "MAILSTUDY_ROOT": str(cwd), "JUPYTER_RUNTIME_DIR": str(runtime), "TMPDIR": str(cwd / "tmp"),
           "JUPYTER_CONFIG_DIR": str(cwd / ".config"), "JUPYTERLAB_WORKSPACES_DIR": str(cwd / ".workspaces")}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        _wait_listening(port, proc, log)
    except BaseException:  # never leave a server (and its kernels) behind when it did not come up
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen) -> None:
    """The server and the kernels it started (their own process group): TERM, then KILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a child that outlived its parent's TERM (Voila under mailstudy)
    except ProcessLookupError:
        pass
    proc.wait(5)


def _state(page) -> tuple[str, str]:
    """(exchanges table text, ladder image src): what must change when a capture or session is picked."""
    table = page.locator(".ms-exchanges").inner_text()
    src = page.locator("img.ms-ladder").get_attribute("src") or ""
    return table, src


def _wait_changed(page, before: tuple[str, str], what: str) -> tuple[str, str]:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        now = _state(page)
        if now[0] != before[0] and now[1] != before[1] and now[1]:
            for img in ("img.ms-ladder", "img.ms-bytes"):  # decoded, so a screenshot shows the whole picture
                page.wait_for_function("el => el.complete && el.naturalHeight > 0",
                                       arg=page.locator(img).element_handle(), timeout=READY_S * 1000)
            return now
        error = page.locator(".ms-error").inner_text().strip()
        if error:
            pytest.fail(f"{what}: the explorer showed an error: {error}")
        page.wait_for_timeout(250)
    pytest.fail(f"{what}: the exchanges table and the ladder did not both change within {READY_S} s")


def _exercise(page, shot: str) -> None:
    """Pick an example capture, then a session of a multi-session capture, then upload a bad file."""
    try:
        page.locator(".ms-capture select").wait_for(timeout=READY_S * 1000)
    except Exception:
        page.screenshot(path=str(BUILD / f"{shot}-never-ready.png"), full_page=True)  # what the page showed
        raise
    # before a capture is picked: no broken image icons (the images are hidden until they have a picture)
    assert page.locator("img.ms-ladder").is_hidden() and page.locator("img.ms-bytes").is_hidden()
    before = _state(page)
    page.locator(".ms-capture select").select_option(label="imap-header-first")
    after = _wait_changed(page, before, "picking imap-header-first")
    assert "IMAP session #0" in after[0] and "FETCH" in after[0]
    page.wait_for_function("() => document.querySelector('.ms-session select').value.startsWith('#0 IMAP')",
                           timeout=READY_S * 1000)
    assert page.locator("img.ms-bytes").get_attribute("src")
    page.screenshot(path=str(BUILD / f"{shot}-example.png"), full_page=True)
    page.locator(".ms-explorer").screenshot(path=str(BUILD / f"{shot}-widget.png"))

    multi = PEER / "pop3.pcap"  # seven POP3 sessions from another project
    page.locator(".ms-path input").fill(str(multi))
    page.locator(".ms-open").click()
    after_open = _wait_changed(page, after, "opening a capture by path")
    assert "POP3 session #6" in after_open[0]  # the busiest session opens first, not the empty #0
    page.wait_for_function("() => document.querySelector('.ms-capture select').selectedIndex === 0",
                           timeout=READY_S * 1000)  # the example list no longer names imap-header-first
    assert "[empty]" in page.locator(".ms-session select option").first.inner_text()
    page.locator(".ms-session select").select_option(index=3)
    after_pick = _wait_changed(page, after_open, "picking session #3")
    assert "POP3 session #3" in after_pick[0]
    page.screenshot(path=str(BUILD / f"{shot}-session.png"), full_page=True)

    with page.expect_file_chooser() as chooser:  # the upload button opens the browser's file dialog
        page.locator(".ms-upload").click()
    chooser.value.set_files(files=[{"name": "notes.pcap", "mimeType": "application/octet-stream",
                                    "buffer": BAD_UPLOAD}])
    error = page.locator(".ms-error")
    error.filter(has_text="notes.pcap").wait_for(timeout=READY_S * 1000)
    text = error.inner_text().strip()
    assert "not a pcap" in text and "notes.pcap" in text, text
    assert "\n" not in text and "Traceback" not in page.locator(".ms-explorer").inner_text()
    # nothing of the last capture stays under the error, and the refused file is not counted
    page.wait_for_function("() => !document.querySelector('.ms-exchanges').innerText.trim()",
                           timeout=READY_S * 1000)
    assert page.locator("img.ms-ladder").is_hidden()
    assert page.locator(".ms-upload").inner_text().strip().endswith("(0)")
    page.screenshot(path=str(BUILD / f"{shot}-bad-upload.png"), full_page=True)


def _run_live(page, shot: str) -> None:
    """Run a live POP3 session through the lan link from the panel: a new capture replaces the one on screen."""
    before = _state(page)
    page.locator(".ms-live-protocol select").select_option("pop3")
    page.locator(".ms-live-strategy select").select_option("download-all")
    page.locator(".ms-live-profile select").select_option("lan")
    page.locator(".ms-live-messages input").fill("3")
    page.locator(".ms-live-messages input").press("Enter")
    page.locator(".ms-live-run").click()
    # it cannot be pressed again while the session runs, and the page says it is busy
    page.wait_for_function("() => document.querySelector('.ms-live-run').disabled", timeout=READY_S * 1000)
    assert "working" in page.locator(".ms-busy").inner_text()
    # the bad upload's error stays on screen until a new action starts, which clears it
    page.wait_for_function("() => !document.querySelector('.ms-error').innerText.trim()", timeout=READY_S * 1000)
    after = _wait_changed(page, before, "running a live session")
    status = page.locator(".ms-status").inner_text()
    assert "live pop3 download-all (lan, embedded" in status, status
    assert "POP3 session #0" in after[0]
    assert after[0].count("RETR") == 3, after[0]  # the three messages asked for, each downloaded once
    page.screenshot(path=str(BUILD / f"{shot}-live.png"), full_page=True)
    page.wait_for_function("() => !document.querySelector('.ms-live-run').disabled", timeout=READY_S * 1000)
    page.wait_for_function("() => !document.querySelector('.ms-busy').innerText.trim()", timeout=READY_S * 1000)


def _teach(page, shot: str) -> None:
    """The imaps example opens with its key log; an exchange reads as text; two sessions compare."""
    before = _state(page)
    page.locator(".ms-capture select").select_option(label="imaps")
    # the bad upload's error stays on screen until a new action starts, which clears it
    page.wait_for_function("() => !document.querySelector('.ms-error').innerText.trim()", timeout=READY_S * 1000)
    after = _wait_changed(page, before, "picking imaps")
    assert "LOGIN" in after[0] and "UID FETCH" in after[0] and "decrypted with a TLS key log" in after[0]
    assert "decrypted with imaps.keylog" in page.locator(".ms-warnings").inner_text()
    page.locator(".ms-exchange select").select_option(index=1)  # LOGIN
    text = page.locator(".ms-exchange-text")
    text.filter(has_text="client → server").wait_for(timeout=READY_S * 1000)
    shown = text.inner_text()
    assert "LOGIN ***" in shown and "throwaway-not-a-secret" not in shown, shown
    page.screenshot(path=str(BUILD / f"{shot}-imaps-exchange.png"), full_page=True)
    page.locator(".ms-keep").click()
    page.locator(".ms-compare-table").filter(has_text="now open another session").wait_for(timeout=READY_S * 1000)
    page.locator(".ms-capture select").select_option(label="pop3-keep")
    page.locator(".ms-compare-table").filter(has_text="B: pop3-keep #0").wait_for(timeout=READY_S * 1000)
    table = page.locator(".ms-compare-table").inner_text()
    assert "A: imaps #0" in table and "31,149" in table, table
    page.wait_for_function("el => el.complete && el.naturalHeight > 0",
                           arg=page.locator("img.ms-compare").element_handle(), timeout=READY_S * 1000)
    page.locator(".ms-compare").screenshot(path=str(BUILD / f"{shot}-compare.png"))
    page.screenshot(path=str(BUILD / f"{shot}-compare-page.png"), full_page=True)


def _network(page, shot: str) -> None:
    """Move the network slider one step: the session is replayed on the next profile and drawn to scale."""
    summary = page.locator(".ms-network-summary")
    summary.filter(has_text="on 4g").wait_for(timeout=READY_S * 1000)
    page.locator(".ms-network .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    summary.filter(has_text="on lte-2012").wait_for(timeout=READY_S * 1000)
    page.wait_for_function("el => el.complete && el.naturalHeight > 0",
                           arg=page.locator("img.ms-network-ladder").element_handle(), timeout=READY_S * 1000)
    page.locator(".ms-network-ladder").screenshot(path=str(BUILD / f"{shot}-network.png"))


def _radio(page, shot: str) -> None:
    """Switch the radio view on: each state's seconds and joules under the exchanges, the states drawn under the
    ladder; another radio model redraws it."""
    table = page.locator(".ms-radio-table")
    assert page.locator("img.ms-radio").is_hidden() and not table.inner_text().strip()  # off until asked
    page.locator(".ms-radio-toggle input[type=checkbox]").check()
    table.filter(has_text="On LTE").wait_for(timeout=READY_S * 1000)
    text = table.inner_text()
    for state in ("promotion", "transfer", "tail", "idle", "total"):
        assert state in text, text
    page.wait_for_function("el => el.complete && el.naturalHeight > 0",
                           arg=page.locator("img.ms-radio").element_handle(), timeout=READY_S * 1000)
    page.locator(".ms-radio-table").screenshot(path=str(BUILD / f"{shot}-radio-table.png"))
    page.locator("img.ms-radio").screenshot(path=str(BUILD / f"{shot}-radio.png"))
    page.locator(".ms-radio-model select").select_option("wifi")
    table.filter(has_text="On Wi-Fi").wait_for(timeout=READY_S * 1000)
    assert page.locator(".ms-error").inner_text().strip() == ""


def _kernel_files(workspace: Path, proc: subprocess.Popen, pattern: str = "kernel-*.json") -> list[Path]:
    """The kernel files of ``mailstudy explore`` (process ``proc``): its folder is in the temporary folder, or in
    SHORT_TEMP when the temporary folder's path is too long for the kernels' Unix sockets (as it is here)."""
    from mailstudy.processes import SHORT_TEMP

    return [f for root in (workspace / "tmp", Path(SHORT_TEMP))
            for f in root.glob(f"mailstudy-explore-{proc.pid}-*/voila_*/{pattern}")]


def _choose_kernel(page) -> None:
    """The notebook JupyterLab opened gets its kernel: through the "Select Kernel" dialog of a fresh notebook
    session (accepted here) or at once. Either is waited for, not a fixed time, since a slow start can show the
    dialog late, and Run All without a kernel would only time out."""
    kernel = "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel"
    dialog = "document.querySelector('.jp-Dialog .jp-mod-accept')"
    page.wait_for_function(f"() => !!({dialog} || {kernel})", timeout=READY_S * 1000)
    if page.evaluate(f"() => !{kernel} && !!{dialog}"):
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.wait_for_function(f"() => !!{kernel}", timeout=READY_S * 1000)


def test_explorer_in_jupyterlab(browser, workspace):
    port, token = _free_port(), "mailstudy-test-token"
    base = f"http://127.0.0.1:{port}"
    proc = _start([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                   f"--ServerApp.root_dir={workspace}", "--LabApp.expose_app_in_browser=True",
                   "--ServerApp.port_retries=0", LAB_KERNELS_OVER_IPC],
                  workspace, port, workspace / "lab.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/notebooks/05-pcap-explorer.ipynb?token={token}")
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                               timeout=READY_S * 1000)
        page.wait_for_function("() => window.jupyterapp.commands.isEnabled('notebook:run-all-cells')",
                               timeout=READY_S * 1000)
        _choose_kernel(page)
        # not awaited: the command's promise settles only when every cell has run
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        _exercise(page, "explorer-lab")
        page.close()
    finally:
        _stop(proc)


def test_explorer_served_by_mailstudy_explore(browser, workspace):
    port, token = _free_port(), "mailstudy-test-token"
    base = f"http://127.0.0.1:{port}"
    proc = _start([sys.executable, "-m", "mailstudy.cli", "explore", "--port", str(port), "--token", token],
                  workspace, port, workspace / "voila.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/?token={token}")
        _exercise(page, "explorer-voila")
        _teach(page, "explorer-voila")
        _network(page, "explorer-voila")
        _radio(page, "explorer-voila")
        _run_live(page, "explorer-voila")
        assert "Traceback" not in page.content()
        assert len(_kernel_files(workspace, proc)) == 1
        assert _kernel_files(workspace, proc, "kernel-*-ipc-*")  # the kernel's Unix sockets: no TCP port to race for
        # leaving the page shuts its kernel down (Voilà's "beforeunload" beacon; headless chromium's page.close()
        # does not send it, so the test leaves the page the way a student navigates away)
        page.goto("about:blank")
        page.close()
        deadline = time.monotonic() + READY_S
        while _kernel_files(workspace, proc) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _kernel_files(workspace, proc) == []
    finally:
        _stop(proc)


NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_all_in_jupyterlab(browser, tmp_path, stem):
    """Opened in JupyterLab from the checkout, the kernel starts in notebooks/: Run All (QUICK=True) must still
    find captures/ and write build/ and data/ under the project root (02 failed at its second cell when its paths
    were relative to the kernel's folder)."""
    import json

    (tmp_path / "notebooks").mkdir()
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    first = nb["cells"][[c["cell_type"] for c in nb["cells"]].index("code")]
    first["source"] = "".join(first["source"]).replace("QUICK = False", "QUICK = True")
    assert "QUICK = True" in first["source"]
    (tmp_path / "notebooks" / f"{stem}.ipynb").write_text(json.dumps(nb))
    shutil.copytree(ROOT / "captures", tmp_path / "captures")
    BUILD.mkdir(exist_ok=True)
    port, token = _free_port(), "mailstudy-test-token"
    proc = _start([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                   f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
                   "--ServerApp.port_retries=0", LAB_KERNELS_OVER_IPC],
                  tmp_path, port, tmp_path / "lab.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/lab/tree/notebooks/{stem}.ipynb?token={token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.isEnabled("
                               "'notebook:run-all-cells')", timeout=READY_S * 1000)
        _choose_kernel(page)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        # JupyterLab 4 renders only the cells near the viewport, so the notebook's model is asked, not the page
        cells = ("() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code')")
        done = (f"() => {{ const w = window.jupyterapp.shell.currentWidget; const cs = ({cells})();"
                f" return cs.length > 0 && cs.every(c => c.model.executionCount > 0)"
                f" && w.sessionContext.session.kernel.status === 'idle'; }}")
        try:
            page.wait_for_function(done, timeout=900_000)  # 03 and 04 run real sessions, even when quick
        finally:
            page.screenshot(path=str(BUILD / f"notebook-{stem}-run-all.png"), full_page=True)
        errors = page.evaluate(f"() => ({cells})().flatMap(c => c.model.outputs.toJSON())"
                               f".filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)")
        assert errors == []
        n_code = sum(c["cell_type"] == "code" for c in nb["cells"])
        assert page.evaluate(f"() => ({cells})().length") == n_code
        assert not (tmp_path / "notebooks" / "build").exists() and not (tmp_path / "notebooks" / "data").exists()
        if stem.startswith("02"):
            assert (tmp_path / "build" / "live-pop3.pcap").exists()
            assert (tmp_path / "data" / "figures" / "ladder-pop3-pipelined.png").exists()
        elif not stem.startswith("05"):
            assert list((tmp_path / "data" / "figures").glob("*.png"))  # its figures, under the project root
        # the kernel spoke over Unix sockets (LAB_KERNELS_OVER_IPC): a TCP kernel warns so in the server's log
        assert "Kernel is running over TCP" not in (tmp_path / "lab.log").read_text(errors="replace")
        page.close()
    finally:
        _stop(proc)
