"""A real JupyterLab 4 and a real headless Chromium for the browser tests.

* ``chromium``: Debian's ``chromium`` package. When it is missing and we are root
  with apt-get, it is installed here; the tests are skipped (with the reason)
  only when that is impossible. Playwright drives it through ``executable_path``:
  ``playwright install`` downloads a browser build of its own and is never run.
* ``lab``: ``jupyter lab`` on a temporary copy of the course (nbgrader_config.py,
  pyproject.toml, release/), token auth, 127.0.0.1 only, nbgrader's server and
  lab extensions enabled, ``ALEXNET_PROFILE=smoke`` for every kernel it starts.
  Teardown shuts the server down and kills any kernel it left behind. ``serve``
  starts the same server on another folder (the instructor's course).
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..repo import scratch_course

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# What Chromium needs on these machines (CI runs as root, no GPU, no network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
CHROMIUM_WRAPPER = Path("/usr/bin/chromium")
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")  # what Debian's wrapper script execs
NBGRADER_SERVER_EXTENSIONS = ("formgrader", "assignment_list", "course_list", "validate_assignment")
SERVER_START_TIMEOUT = 120
APT_TIMEOUT = 900


def _find_chromium() -> Path | None:
    # The real binary, so that Playwright owns the process and its flags
    # (Debian's wrapper script adds flags of its own); the wrapper otherwise.
    for candidate in (CHROMIUM_BINARY, CHROMIUM_WRAPPER):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    return Path(found) if found else None


def _apt_install_chromium() -> str:
    """Try to install Debian's chromium; return what went wrong ('' on success)."""
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get is not available on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    install = [apt, "install", "-y", "-q", "chromium"]
    for step in (install, [apt, "update", "-q"], install):  # a stale package list fails the first install
        try:
            proc = subprocess.run(step, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(step)}` took more than {APT_TIMEOUT} s"
        log.append(f"$ {' '.join(step)} -> exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-1500:]}")
        if step[1] == "install" and proc.returncode == 0 and _find_chromium():
            return ""
    return "apt-get could not install chromium:\n" + "\n".join(log)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Path of Debian's Chromium, installed through apt-get when missing (skip if impossible)."""
    path = _find_chromium()
    if path is None:
        problem = _apt_install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(f"browser tests need Debian's `chromium` package (/usr/bin/chromium); {problem}")
    return path


@pytest.fixture(scope="session")
def browser(chromium):
    """One headless Chromium for the session, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def open_url(self, relpath: str) -> str:
        return f"{self.url}/lab/tree/{relpath}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19]


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below pid: kernels run in sessions of their own, so killpg misses them."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _kill(processes) -> None:
    """SIGKILL each (pid, start time) still alive; a pid since reused by another process is left alone."""
    for pid, started in processes:
        stat = _stat(pid)
        if stat and stat[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab 4 with nbgrader's extensions on a scratch copy of the course (a student's view: release/)."""
    course = scratch_course(tmp_path_factory.mktemp("browser-course"), "release")
    with serve(course, tmp_path_factory.mktemp("jupyter-home")) as server:
        yield server


@contextlib.contextmanager
def serve(course: Path, home: Path):
    """``jupyter lab`` on ``course`` (also nbgrader's course directory for the formgrader), until the block ends.

    Private Jupyter config, settings, workspaces and runtime in ``home``: nothing of the
    user's (a saved layout, a disabled extension, a theme) leaks into the test.
    """
    config, settings = home / "config", home / "lab-settings"
    _write_json(config / "jupyter_server_config.json", {"ServerApp": {"jpserver_extensions": {
        f"nbgrader.server_extensions.{ext}": True for ext in NBGRADER_SERVER_EXTENSIONS}}})
    # `jupyter labextension enable @jupyter/nbgrader` at user level.
    _write_json(config / "labconfig" / "page_config.json", {"disabledExtensions": {"@jupyter/nbgrader": False}})
    # No "would you like news?" toast over the notebook, no update check.
    _write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})

    token = secrets.token_hex(24)
    port = _free_port()
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # kernels must use the inline backend, so figures reach the browser
    env.update(
        ALEXNET_PROFILE="smoke",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        PYTHONUNBUFFERED="1",
    )
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = home / "jupyter-lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=course, process=process, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode} before it answered:\n{server.tail()}")
            try:
                server.api("status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /api/status within {SERVER_START_TIMEOUT} s:\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(server)


def _stop(server: Lab) -> None:
    process = server.process
    below = _descendants(process.pid) if process.poll() is None else []
    if process.poll() is None:
        try:
            server.api("shutdown", method="POST", timeout=10)  # shuts its kernels down too
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    _kill(below)  # any kernel that outlived its server
