"""Helpers for the Nextcloud stand-in tests (module name kept unique: the repo has other conftest.py files).

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
