"""Fixtures for the Nextcloud stand-in tests.

The stand-in is built with tests/standin/build.py into a session directory,
then unpacked per test into a temp dir and installed through occ, as the web
user (www-data) when the tests run as root, as the current user otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / "build.py"
IS_ROOT = os.geteuid() == 0
WEB_USER = "www-data" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
ADMIN_PASS = "Adm1n-pass!"
VERSIONS = ("32.0.2", "33.0.0", "34.0.0")


def as_user(cmd: list[str], user: str | None = WEB_USER) -> list[str]:
    """Run cmd as user (setpriv execs, so the pid we get is the program's own)."""
    if IS_ROOT and user and user != "root":
        entry = pwd.getpwnam(user)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *cmd]
    return cmd


def chown_tree(path: Path, user: str = WEB_USER) -> None:
    if not IS_ROOT:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """DIR with signed stand-in archives of 32.0.2, 33.0.0 and 34.0.0."""
    if shutil.which("gpg") is None or shutil.which("php") is None:
        pytest.fail("the stand-in tests need gpg and php-cli (Debian: gnupg php-cli)")
    # like Nextcloud, the stand-in refuses to run without these PHP modules
    modules = {m.lower() for m in subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.split()}
    needed = {"pdo_sqlite": "php-sqlite3", "zip": "php-zip", "dom": "php-xml", "simplexml": "php-xml",
              "xmlreader": "php-xml", "xmlwriter": "php-xml", "mbstring": "php-mbstring", "gd": "php-gd",
              "curl": "php-curl", "posix": "php-cli"}
    missing = sorted({package for module, package in needed.items() if module not in modules})
    if missing:
        pytest.fail("PHP modules missing for the stand-in; install the Debian packages: " + " ".join(missing))
    out = tmp_path_factory.mktemp("dist")
    for version in VERSIONS:
        subprocess.run([sys.executable, str(BUILD), "--version", version, "--out", str(out)], check=True, capture_output=True)
    return out


def unpack(dist: Path, version: str, dest: Path) -> Path:
    """Extract the release archive into dest (over an existing tree for upgrades)."""
    with tarfile.open(dist / f"nextcloud-{version}.tar.bz2") as tar:
        tar.extractall(dest, filter="tar") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
    chown_tree(dest / "nextcloud")
    return dest / "nextcloud"


@dataclass
class Instance:
    base: Path
    root: Path
    data: Path
    servers: list = field(default_factory=list)

    def occ(self, *args: str, user: str | None = WEB_USER, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(as_user(["php", "occ", *args], user), cwd=self.root, capture_output=True, text=True,
                              timeout=60, env={**os.environ, **(env or {})})

    def php(self, script: str, user: str | None = WEB_USER) -> subprocess.CompletedProcess:
        return subprocess.run(as_user(["php", "-r", script], user), cwd=self.root, capture_output=True, text=True, timeout=60)

    def config(self) -> dict:
        """The merged config as PHP sees it (config.php + *.config.php)."""
        result = self.php(
            '$all = []; foreach (array_merge(["config/config.php"], glob("config/*.config.php")) as $f) '
            '{ $CONFIG = []; include $f; $all = array_merge($all, $CONFIG); } echo json_encode($all);')
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def config_php_keys(self) -> list[str]:
        result = self.php('include "config/config.php"; echo json_encode(array_keys($CONFIG));')
        return json.loads(result.stdout)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.data / "owncloud.db") as db:
            return db.execute(query, params).fetchall()

    def install(self, *extra: str) -> subprocess.CompletedProcess:
        return self.occ("maintenance:install", "--admin-user", "admin", "--admin-pass", ADMIN_PASS,
                        "--data-dir", str(self.data), *extra)

    def upgrade_code(self, dist: Path, version: str) -> None:
        unpack(dist, version, self.base)


@pytest.fixture
def workdir():
    """A temp dir the web user can traverse (pytest's own tmp_path is 0700 for root)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="standin-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fresh(dist, workdir) -> Instance:
    """An unpacked, not yet installed stand-in 32.0.2 with an empty data dir."""
    root = unpack(dist, "32.0.2", workdir)
    data = workdir / "data"
    data.mkdir()
    chown_tree(data)
    return Instance(base=workdir, root=root, data=data)


@pytest.fixture
def nc(fresh) -> Instance:
    """A stand-in 32.0.2 installed with SQLite."""
    result = fresh.install()
    assert result.returncode == 0, result.stdout + result.stderr
    return fresh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Web:
    base_url: str
    proc: subprocess.Popen

    def request(self, path: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None,
                auth: tuple[str, str] | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        if auth:
            import base64
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        opener = urllib.request.build_opener(NoRedirect())
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, path: str, **kw) -> tuple[int, dict]:
        code, _, body = self.request(path, **kw)
        return code, json.loads(body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def start_web(inst: Instance, *php_args: str) -> Web:
    """php -S on a free loopback port as the web user, serving the stand-in."""
    port = free_port()
    proc = subprocess.Popen(as_user(["php", *php_args, "-S", f"127.0.0.1:{port}", "-t", str(inst.root)]),
                            cwd=inst.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    inst.servers.append(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Web(f"http://127.0.0.1:{port}", proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("php -S did not start")


@pytest.fixture
def web_factory(nc):
    started: list[subprocess.Popen] = []

    def factory(*php_args: str) -> Web:
        web = start_web(nc, *php_args)
        started.append(web.proc)
        return web

    yield factory
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
