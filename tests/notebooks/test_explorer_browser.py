"""The explorer in a real browser: JupyterLab on a free local port, 01_explore.ipynb opened in headless
Chromium through Playwright, all cells run, a click on the LR image and an arrow key, and the neighbour panel
follows; then a model typed into the model box adds its panel.

Needs Playwright (the ``dev`` extra) and Debian's ``chromium`` (Playwright cannot download its own browser
here; ``IGNN_LAB_CHROMIUM`` names another executable). Skips when either is missing, unless
``IGNN_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails. The screenshots are kept in
``IGNN_LAB_ARTIFACTS`` (default ``runs/test-artifacts``) and their paths printed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ignn_lab.lab.notebooks import notebooks_dir

REPO = Path(__file__).resolve().parents[2]
SERVER_START_S = 120
NOTEBOOK_RUN_S = 420
CLICK_S = 60


def _missing(what: str):
    if os.environ.get("IGNN_LAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required for the browser test (IGNN_LAB_REQUIRE_BROWSER=1) but was not found")
    pytest.skip(f"{what} not found: the browser test needs it (.ci/run installs it)")


def _chromium() -> str:
    exe = os.environ.get("IGNN_LAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        _missing("Debian's chromium (apt-get install chromium)")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jupyter_path() -> str:
    """Jupyter data dirs holding anywidget's prebuilt lab extension (beside the package when it was installed
    with ``pip --target``; in a venv it is under ``sys.prefix`` and found anyway)."""
    import anywidget

    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    extra = Path(anywidget.__file__).resolve().parents[1] / "share" / "jupyter"
    if (extra / "labextensions" / "anywidget").is_dir():
        paths.insert(0, str(extra))
    return os.pathsep.join(paths)


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer {url} within {SERVER_START_S} s:\n"
                         f"{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def jupyterlab(tmp_path):
    for module in ("jupyterlab", "anywidget", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"the Python package {module} (pip install 'ignn-lab[notebooks]')")
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(notebooks_dir() / "01_explore.ipynb", root)
    port, token = _free_port(), "ignn-lab-browser-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "IPYTHONDIR": str(tmp_path / "ipython"),
           "JUPYTER_PATH": _jupyter_path(), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no news / update toasts over the screenshots
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false, "doNotDisturbMode": true}')
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # containers and CI runners often run as root
        cmd.append("--allow-root")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token, root
    finally:
        _stop(proc)


def _artifacts() -> Path:
    d = Path(os.environ.get("IGNN_LAB_ARTIFACTS") or REPO / "runs" / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

QUERY_CHANGED = """(before) => {
  const s = document.querySelector('.ix-neighbours');
  return !!s && s.dataset.query !== before;
}"""


@pytest.mark.notebooks
@pytest.mark.browser
def test_explorer_in_jupyterlab(jupyterlab, tmp_path):
    from ignn_lab.models import build, save

    checkpoint = save(build("ignn-lite", 2), tmp_path / "ignn-lite-untrained.pt")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright (pip install 'ignn-lab[dev]')")
    exe = _chromium()
    base, token, root = jupyterlab
    shots = _artifacts()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, timeout=60_000,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/01_explore.ipynb?token={token}", timeout=SERVER_START_S * 1000)
            page.wait_for_selector(".jp-Notebook", timeout=SERVER_START_S * 1000)
            page.wait_for_function(KERNEL_IDLE, timeout=SERVER_START_S * 1000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            try:
                page.wait_for_selector(".ix-neighbours figure", timeout=NOTEBOOK_RUN_S * 1000)
            except Exception:
                page.screenshot(path=str(shots / "explorer_browser_failed.png"), full_page=True)
                print(f"screenshot of the failure: {shots / 'explorer_browser_failed.png'}")
                raise
            strip = page.locator(".ix-neighbours")
            before = strip.get_attribute("data-query")
            neighbours_before = strip.get_attribute("data-neighbours")
            html_before = strip.inner_html()
            lr = page.locator(".ix-top image[data-panel=lr]")
            lr.scroll_into_view_if_needed()
            box = lr.bounding_box()
            size = page.evaluate("() => { const i = document.querySelector('.ix-top image[data-panel=lr]');"
                                 " return [Number(i.getAttribute('height')),"
                                 " Number(i.getAttribute('width'))]; }")
            # the centre of one LR pixel: a textured spot on the suit, away from the notebook's first patch
            assert size == [256, 256]
            row, col = 191, 119
            page.mouse.click(box["x"] + (col + 0.5) / size[1] * box["width"],
                             box["y"] + (row + 0.5) / size[0] * box["height"])
            page.wait_for_function(QUERY_CHANGED, arg=before, timeout=CLICK_S * 1000)
            expected = f"{row - row % 2},{col - col % 2}"  # snapped down to the stride-2 patch grid
            assert strip.get_attribute("data-query") == expected, (before, strip.get_attribute("data-query"))
            assert strip.get_attribute("data-neighbours") != neighbours_before
            assert strip.inner_html() != html_before  # the neighbour pictures changed too
            page.keyboard.press("ArrowDown")  # one patch down
            page.wait_for_function(QUERY_CHANGED, arg=expected, timeout=CLICK_S * 1000)
            assert strip.get_attribute("data-query") == f"{row - row % 2 + 2},{col - col % 2}"
            widget = page.locator(".jp-OutputArea-output:has(.ix-root)")
            widget.screenshot(path=str(shots / "explorer_browser.png"))
            # a model (untrained ignn-lite, for the wiring): its own neighbours, weights and SR crops appear
            model_box = page.locator("input[placeholder='none, a shipped name or a checkpoint']")
            model_box.fill(str(checkpoint))
            model_box.press("Enter")
            page.wait_for_selector(".ix-model table tbody tr", timeout=CLICK_S * 1000)
            assert page.locator(".ix-model table tbody tr").count() == 3  # ignn-lite: k = 3
            assert page.locator(".ix-model-neighbour").count() == 3
            assert page.locator(".ix-model-crop img").count() == 3  # SR, bicubic, HR
            assert strip.get_attribute("data-query") == f"{row - row % 2 + 2},{col - col % 2}"  # kept
            widget.screenshot(path=str(shots / "explorer_browser_model.png"))
            page.screenshot(path=str(shots / "explorer_browser_page.png"), full_page=True)
        finally:
            browser.close()
    names = ("explorer_browser.png", "explorer_browser_model.png", "explorer_browser_page.png")
    print(f"screenshots: {', '.join(str(shots / n) for n in names)}")
