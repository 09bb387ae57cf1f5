"""Start, stop and check a local Label Studio server (the real one, from the `label-studio` package).

Loopback only, every outbound feature off, an admin user and API token from the environment or a
credentials file — never from code. Settings come from, in order: arguments, environment variables
(`LABEL_STUDIO_URL`, `LABEL_STUDIO_USERNAME`, `LABEL_STUDIO_PASSWORD`, `LABEL_STUDIO_USER_TOKEN`), then
`<data dir>/credentials.json` (written with mode 0600 on the first start when the environment gives
none). PostgreSQL instead of SQLite: Label Studio's own variables (`DJANGO_DB=default`, `POSTGRE_HOST`,
`POSTGRE_PORT`, `POSTGRE_NAME`, `POSTGRE_USER`, `POSTGRE_PASSWORD`) pass straight through.
"""

from __future__ import annotations

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

from moderation.errors import ModerationError

DEFAULT_DATA_DIR = Path("data") / "labelstudio"
OFFLINE_ENV = {
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "FEATURE_FLAGS_OFFLINE": "true",
    "CONVERTER_DOWNLOAD_RESOURCES": "false",
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    # The legacy token must be enabled when the organisation is created (first start), or it gets 401.
    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    # Our ML backend and webhooks live on 127.0.0.1.
    "SSRF_PROTECTION_ENABLED": "false",
    "ML_BLOCK_LOCAL_IP": "false",
}


class LabelStudioError(ModerationError, RuntimeError):
    """Label Studio is unreachable, refused us, or answered something we cannot use. Never holds the token."""


@dataclass
class Credentials:
    url: str
    username: str
    password: str
    token: str

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(url={self.url!r}, username={self.username!r}, password=***, token=***)"


def data_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("MODERATION_LABELSTUDIO_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


def load_credentials(root: Path, url: str | None = None, create: bool = False) -> Credentials:
    """Environment first, then the credentials file; with `create`, make and save random ones."""
    file = root / "credentials.json"
    saved = json.loads(file.read_text()) if file.is_file() else {}
    creds = {
        "url": url or os.environ.get("LABEL_STUDIO_URL") or saved.get("url") or "http://127.0.0.1:8080",
        "username": os.environ.get("LABEL_STUDIO_USERNAME") or saved.get("username"),
        "password": os.environ.get("LABEL_STUDIO_PASSWORD") or saved.get("password"),
        "token": os.environ.get("LABEL_STUDIO_USER_TOKEN") or os.environ.get("LABEL_STUDIO_API_KEY") or saved.get("token"),
    }
    if not create and creds["token"]:  # a client needs only the URL and the token
        return Credentials(**{k: v or "" for k, v in creds.items()})
    if not all(creds.values()):
        if not create:
            raise LabelStudioError(
                "no Label Studio credentials: set LABEL_STUDIO_USER_TOKEN (and LABEL_STUDIO_URL), or start the server "
                f"with `moderate review serve`, which writes them to {file}")
        creds["username"] = creds["username"] or "admin@moderation.local"
        creds["password"] = creds["password"] or secrets.token_urlsafe(18)
        creds["token"] = creds["token"] or secrets.token_hex(20)
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f)
    return Credentials(**creds)


def health(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health/", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def label_studio_binary() -> str:
    here = Path(sys.executable).parent / "label-studio"
    found = str(here) if here.exists() else shutil.which("label-studio")
    if not found:
        raise LabelStudioError("the label-studio package is not installed: pip install 'label-studio==1.23.*'")
    return found


def start(root: str | Path | None = None, host: str = "127.0.0.1", port: int = 8080, timeout: float = 240.0,
          log=print) -> Credentials:
    """Start Label Studio in its own process group and wait until /health answers."""
    root = data_dir(root)
    root.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    pid_file = root / "server.pid"
    if pid_file.is_file() and _pid_alive(int(pid_file.read_text().split()[0])):
        running_url = pid_file.read_text().split()[1]
        if health(running_url):
            log(f"Label Studio already running at {running_url}")
            return load_credentials(root, running_url)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: binding Label Studio to {host}, not loopback")
    if not _port_free(host, port):
        # Label Studio would silently move to the next port; we refuse instead of guessing.
        raise LabelStudioError(f"port {port} on {host} is in use; pass --port")
    creds = load_credentials(root, url, create=True)
    env = {**os.environ, **OFFLINE_ENV,
           "LABEL_STUDIO_USERNAME": creds.username, "LABEL_STUDIO_PASSWORD": creds.password,
           "LABEL_STUDIO_USER_TOKEN": creds.token,
           "XDG_DATA_HOME": str(root / "xdg-data"), "XDG_CACHE_HOME": str(root / "xdg-cache"),
           "XDG_CONFIG_HOME": str(root / "xdg-config"), "LABEL_STUDIO_BASE_DATA_DIR": str(root)}
    logfile = open(root / "server.log", "ab")
    proc = subprocess.Popen(
        [label_studio_binary(), "start", "--no-browser", "--internal-host", host, "--port", str(port),
         "--data-dir", str(root / "ls-data")],
        env=env, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{proc.pid} {url}\n")
    first = not (root / "ls-data" / "label_studio.sqlite3").exists()
    log(f"starting Label Studio at {url} (data in {root}{'; first start runs migrations, ~40 s' if first else ''})…")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with code {proc.returncode}; see {root / 'server.log'}")
        if health(url):
            creds.url = url
            return creds
        time.sleep(1.0)
    stop(root)
    raise LabelStudioError(f"Label Studio did not answer {url}/health/ within {timeout:.0f}s; see {root / 'server.log'}")


def stop(root: str | Path | None = None, timeout: float = 20.0) -> bool:
    """SIGTERM the server's process group, SIGKILL after `timeout`. Returns False when none was running."""
    root = data_dir(root)
    pid_file = root / "server.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().split()[0])
    if not _pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    if _pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pid_file.unlink(missing_ok=True)
    return True


def status(root: str | Path | None = None) -> dict:
    root = data_dir(root)
    pid_file = root / "server.pid"
    if not pid_file.is_file():
        return {"running": False, "data_dir": str(root)}
    pid, url = pid_file.read_text().split()[:2]
    alive = _pid_alive(int(pid))
    return {"running": alive, "healthy": alive and health(url), "url": url, "pid": int(pid), "data_dir": str(root)}
