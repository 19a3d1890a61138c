"""Fixtures for the Nextcloud stand-in tests; the helpers are in standin_support.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from standin_support import BUILD, VERSIONS, Instance, chown_tree, start_web, unpack


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
