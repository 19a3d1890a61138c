"""The stand-in against a local Redis and PostgreSQL.

The lab tests exercise both on the cluster; these only check the stand-in's own code paths. The Makefile installs
both servers; outside CI the tests are skipped where they are missing, in CI (CI=true, as in `make blank`) a
missing server fails them, so a package dropped from the install steps cannot pass unnoticed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from standin_support import IS_ROOT, free_port, start_web

PHP_MODULES = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.split()
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def requires(missing: bool, reason: str):
    """Skip where the server is missing, except in CI: there the test runs and fails on what is missing."""
    return pytest.mark.skipif(missing and os.environ.get("CI") != "true", reason=reason)


redis_required = requires(shutil.which("redis-server") is None or "redis" not in PHP_MODULES,
                          "needs redis-server and php-redis (Makefile HOST_PACKAGES)")
pg_required = requires(not PG_BIN or not IS_ROOT or "pdo_pgsql" not in PHP_MODULES,
                       "needs PostgreSQL server binaries, php-pgsql and root (Makefile HOST_PACKAGES)")


class RedisServer:
    def __init__(self, *args: str):
        self.port = free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if "PONG" in ping.stdout or "NOAUTH" in ping.stdout + ping.stderr:
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server():
    servers: list[RedisServer] = []

    def factory(*args: str) -> RedisServer:
        server = RedisServer(*args).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


def set_redis(nc, port: int, distributed: bool, locking: bool) -> None:
    """Redis settings in an extra config/redis.config.php (merged over config.php)."""
    lines = [f"  'redis' => array('host' => '127.0.0.1', 'port' => {port}, 'timeout' => 1.5),"]
    if distributed:
        lines.append("  'memcache.distributed' => '\\\\OC\\\\Memcache\\\\Redis',")
    if locking:
        lines.append("  'memcache.locking' => '\\\\OC\\\\Memcache\\\\Redis',")
    path = nc.root / "config" / "redis.config.php"
    path.write_text("<?php\n$CONFIG = array(\n" + "\n".join(lines) + "\n);\n")
    os.chmod(path, 0o644)


@redis_required
def test_redis_down_matches_nextcloud_32(nc, web_factory, redis_server):
    redis = redis_server()
    set_redis(nc, redis.port, distributed=True, locking=True)
    web = web_factory()
    auth = ("admin", "Adm1n-pass!")
    url = "/remote.php/dav/files/admin/r.txt"
    assert web.request(url, "PUT", b"x", auth=auth)[0] == 201
    assert web.json("/probe.php?checks=redis")[0] == 200
    redis.stop()
    # distributed + locking: 503 / 503; status.php keeps answering 200
    assert web.request(url, auth=auth)[0] == 503
    assert web.request(url, "PUT", b"y", auth=auth)[0] == 503
    code, status = web.json("/status.php")
    assert code == 200 and status["installed"] is True and status["maintenance"] is False
    assert web.json("/probe.php?checks=redis")[0] == 503
    # distributed only (locking in the database): 503
    set_redis(nc, redis.port, distributed=True, locking=False)
    assert web.request(url, auth=auth)[0] == 503
    # locking only: 500
    set_redis(nc, redis.port, distributed=False, locking=True)
    assert web.request(url, auth=auth)[0] == 500
    assert web.request(url, "PUT", b"y", auth=auth)[0] == 500
    # Redis back: 200 / 201-or-204 (a stale persistent connection may fail once)
    set_redis(nc, redis.port, distributed=True, locking=True)
    redis.start()
    codes = [web.request(url, auth=auth)[0] for _ in range(3)]
    assert codes[-1] == 200
    assert web.request("/remote.php/dav/files/admin/new.txt", "PUT", b"z", auth=auth)[0] == 201


@redis_required
def test_redis_password_acl_user_dbindex_and_socket(nc, web_factory, redis_server):
    redis = redis_server("--requirepass", "defaultpw", "--user", "ncuser", "on", ">ncpw", "~*", "&*", "+@all")
    nc.occ("config:system:set", "redis", "host", "--value=127.0.0.1")
    nc.occ("config:system:set", "redis", "port", f"--value={redis.port}", "--type=integer")
    nc.occ("config:system:set", "redis", "user", "--value=ncuser")
    nc.occ("config:system:set", "redis", "password", "--value=ncpw")
    nc.occ("config:system:set", "redis", "dbindex", "--value=3", "--type=integer")
    web = web_factory()
    code, probe = web.json("/probe.php?checks=redis")
    assert code == 200, probe
    keys = subprocess.run(["redis-cli", "-p", str(redis.port), "--user", "ncuser", "--pass", "ncpw", "-n", "3", "--no-auth-warning",
                           "keys", "*standin-probe*"], capture_output=True, text=True).stdout
    assert "standin-probe/cache/" in keys
    nc.occ("config:system:set", "redis", "password", "--value=wrong")
    code, probe = web.json("/probe.php?checks=redis")
    assert code == 503 and probe["redis"]["ok"] is False
    # host as a unix socket path, port 0
    sockdir = tempfile.mkdtemp(prefix="standin-redis-")
    os.chmod(sockdir, 0o755)
    try:
        sock = os.path.join(sockdir, "redis.sock")
        redis_server("--unixsocket", sock, "--unixsocketperm", "777")
        nc.occ("config:system:delete", "redis")
        nc.occ("config:system:set", "redis", "host", f"--value={sock}")
        nc.occ("config:system:set", "redis", "port", "--value=0", "--type=integer")
        code, probe = web.json("/probe.php?checks=redis")
        assert code == 200, probe
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on a free loopback port, run as the postgres user."""
    bindir = PG_BIN[-1]
    pg = pwd.getpwnam("postgres")
    base = tempfile.mkdtemp(prefix="standin-pg-")
    os.chown(base, pg.pw_uid, pg.pw_gid)
    port = free_port()
    as_pg = ["setpriv", f"--reuid={pg.pw_uid}", f"--regid={pg.pw_gid}", "--init-groups"]
    with open(f"{base}/pw", "w") as f:
        f.write("superpw\n")
    os.chown(f"{base}/pw", pg.pw_uid, pg.pw_gid)
    subprocess.run([*as_pg, f"{bindir}/initdb", "-D", f"{base}/data", "-A", "scram-sha-256", f"--pwfile={base}/pw",
                    "-U", "postgres"], check=True, capture_output=True, text=True, cwd=base)
    subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", f"{base}/data", "-w", "-l", f"{base}/log", "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True, cwd=base)

    def psql(sql: str, db: str = "postgres") -> str:
        return subprocess.run([*as_pg, f"{bindir}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-tAc", sql],
                              env={**os.environ, "PGPASSWORD": "superpw"}, check=True, capture_output=True, text=True, cwd=base).stdout

    try:
        yield port, psql
    finally:
        subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", f"{base}/data", "-m", "immediate", "stop"], capture_output=True, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


@pg_required
def test_install_with_postgresql(fresh, postgres):
    port, psql = postgres
    psql("CREATE ROLE nc LOGIN PASSWORD 'ncpw'")
    psql("CREATE DATABASE nextcloud OWNER nc")
    result = fresh.install("--database=pgsql", "--database-host=127.0.0.1", f"--database-port={port}",
                           "--database-name=nextcloud", "--database-user=nc", "--database-pass=ncpw")
    assert result.returncode == 0, result.stdout + result.stderr
    config = fresh.config()
    assert fresh.config_php_keys() == ["passwordsalt", "secret", "trusted_domains", "datadirectory", "dbtype", "version",
                                       "overwrite.cli.url", "dbname", "dbhost", "dbtableprefix", "dbuser", "dbpassword",
                                       "installed", "instanceid"]
    assert (config["dbtype"], config["dbhost"], config["dbuser"], config["dbname"]) == ("pgsql", f"127.0.0.1:{port}", "nc", "nextcloud")
    assert "dbport" not in config
    assert fresh.occ("background:cron").returncode == 0
    assert psql("SELECT configvalue FROM oc_appconfig WHERE appid='core' AND configkey='backgroundjobs_mode'", "nextcloud").strip() == "cron"
    web = start_web(fresh)
    try:
        code, probe = web.json("/probe.php?checks=db,datadir&write=pg-key")
        assert code == 200, probe
        code, probe = web.json("/probe.php?checks=db&read=pg-key")
        assert probe["read"]["found_row"] is True
        assert psql("SELECT hostname FROM oc_standin_probe WHERE probe_key = 'pg-key'", "nextcloud").strip() == os.uname().nodename
    finally:
        web.proc.terminate()
        web.proc.wait(timeout=5)


@pg_required
def test_postgresql_login_with_createrole_gets_oc_admin(fresh, postgres):
    # like Nextcloud: a login with CREATEROLE makes the installer create oc_admin (a plain superuser does not)
    port, psql = postgres
    psql("CREATE ROLE ncadmin LOGIN SUPERUSER CREATEROLE PASSWORD 'adminpw'")
    result = fresh.install("--database=pgsql", f"--database-host=127.0.0.1:{port}", "--database-name=ncdb",
                           "--database-user=ncadmin", "--database-pass=adminpw")
    assert result.returncode == 0, result.stdout + result.stderr
    config = fresh.config()
    assert config["dbuser"] == "oc_admin" and config["dbpassword"] != "adminpw"
    assert psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'ncdb'").strip() == "oc_admin"
