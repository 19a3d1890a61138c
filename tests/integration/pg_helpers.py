"""Helpers shared by the PostgreSQL integration tests and the failover benchmark.

Everything runs on the lab's hosts over ssh: SQL as postgres on the database nodes, and as the Nextcloud role
through PgBouncer on a web node (127.0.0.1:6432), exactly the path Nextcloud uses.
"""
import os
import shlex
import subprocess
import tempfile
import time

import yaml

from lab_paths import INVENTORY, LAB_NAME, LAB_VARS, PLAYBOOK, ROOT, SSH_CONFIG, STATE  # noqa: F401 (re-exported)
DB_NAME = LAB_VARS.get("nextcloud_ha_db_name", "nextcloud")
DB_USER = LAB_VARS.get("nextcloud_ha_db_user", "nextcloud")
DB_PASSWORD = LAB_VARS["nextcloud_ha_db_password"]


def run_ssh(host, command, timeout=60, input_=None):
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, command], capture_output=True, text=True,
                          timeout=timeout, input=input_)


def sql(host, query, db="postgres", check=True, timeout=60):
    """Run SQL as postgres on a database node; returns stdout stripped (unaligned, tuples only)."""
    res = run_ssh(host, "sudo -u postgres psql -XAtq -v ON_ERROR_STOP=1 -d %s" % shlex.quote(db), timeout=timeout,
                  input_=query)
    if check and res.returncode != 0:
        raise AssertionError("SQL on %s failed (%d): %s\n%s" % (host, res.returncode, query, res.stderr))
    return res.stdout.strip() if check else res


def bouncer_sql(web, query, check=True, timeout=30, host="127.0.0.1", port=6432):
    """Run SQL as the Nextcloud role through PgBouncer on a web node (or directly with host/port)."""
    cmd = "PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -v ON_ERROR_STOP=1 -h %s -p %d -U %s -d %s" % (
        shlex.quote(DB_PASSWORD), shlex.quote(host), port, DB_USER, DB_NAME)
    res = run_ssh(web, cmd, timeout=timeout, input_=query)
    if check and res.returncode != 0:
        raise AssertionError("SQL through %s:%d on %s failed: %s\n%s" % (host, port, web, query, res.stderr))
    return res.stdout.strip() if check else res


def wait_for(predicate, timeout, interval=0.5):
    """Poll predicate() until it returns a truthy value or timeout seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except subprocess.TimeoutExpired:  # a host still booting can hold a connection; that is a "not yet"
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def inventory_with(primary, standbys):
    """Write an inventory like the lab's with other hosts in postgres_primary/postgres_standby; returns its dir."""
    with open(os.path.join(INVENTORY, "hosts.yml")) as f:
        data = yaml.safe_load(f)
    children = data["all"]["children"]
    primaries = [primary] if isinstance(primary, str) else primary
    children["postgres_primary"] = {"hosts": {h: {} for h in primaries}}
    children["postgres_standby"] = {"hosts": {h: {} for h in standbys}}
    path = tempfile.mkdtemp(prefix="pginv-")
    with open(os.path.join(path, "hosts.yml"), "w") as f:
        yaml.safe_dump(data, f)
    os.symlink(os.path.join(ROOT, "lab", "inventory", "group_vars"), os.path.join(path, "group_vars"))
    return path


def playbook(name, *args, inventory=None, timeout=1500):
    """Run one of the collection's playbooks against the lab; returns CompletedProcess."""
    cmd = [PLAYBOOK, "-i", inventory or INVENTORY, os.path.join(ROOT, "playbooks", name)] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def recap(output):
    """Parse PLAY RECAP into {host: {ok:, changed:, failed:, ...}}."""
    result, inside = {}, False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            inside = True
            continue
        # Only the recap's "host : ok=N changed=N ..." lines (a WHAT CHANGED section may follow).
        if inside and " : ok=" in line:
            host, _, rest = line.partition(" : ")
            result[host.strip()] = {k: int(v) for k, v in (kv.split("=") for kv in rest.split())}
    return result


def podman(*args):
    return subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=120)


def container(host):
    return "%s-%s" % (LAB_NAME, host)


WRITER = r"""
end=$(( $(date +%%s) + %(seconds)d ))
i=0
while [ "$(date +%%s)" -lt "$end" ]; do
    i=$((i + 1))
    if PGPASSWORD=%(password)s PGCONNECT_TIMEOUT=3 timeout 10 psql -XAtq -h 127.0.0.1 -p 6432 -U %(user)s -d %(db)s \
            -c "INSERT INTO ha_probe (token) VALUES ('%(prefix)s-$i')" >/dev/null 2>&1; then
        echo "ok %(prefix)s-$i $(date +%%s.%%N)"
    else
        echo "fail %(prefix)s-$i $(date +%%s.%%N)"
    fi
    sleep %(pause)s
done
"""


def start_writer(web, prefix, seconds, pause=0.05):
    """Write one row per transaction through PgBouncer on `web` for `seconds`; returns the running Popen.

    Each output line is 'ok|fail TOKEN EPOCH'; a token printed with ok was committed (psql returned 0).
    """
    script = WRITER % {"seconds": seconds, "password": shlex.quote(DB_PASSWORD), "user": DB_USER, "db": DB_NAME,
                       "prefix": prefix, "pause": pause}
    return _popen_with_script(web, script)


def _popen_with_script(web, script):
    proc = subprocess.Popen(["ssh", "-F", SSH_CONFIG, web, "bash -s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def writer_results(proc, timeout=600):
    """Wait for a writer; returns (committed tokens, list of (epoch, ok))."""
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    committed, events = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        events.append((float(parts[2]), parts[0] == "ok"))
        if parts[0] == "ok":
            committed.append(parts[1])
    return committed, events


def longest_write_gap(events):
    """Seconds between the last successful write before a run of failures and the first one after it."""
    gap, last_ok = 0.0, None
    for at, ok in events:
        if ok:
            if last_ok is not None:
                gap = max(gap, at - last_ok)
            last_ok = at
    return gap


def missing_tokens(host, tokens, db=None):
    """Tokens (committed writes) that are not in ha_probe on host."""
    if not tokens:
        return []
    values = ",".join("('%s')" % t for t in tokens)
    out = sql(host, "SELECT t FROM (VALUES %s) AS v(t) WHERE NOT EXISTS "
                    "(SELECT 1 FROM ha_probe WHERE token = v.t)" % values, db=db or DB_NAME)
    return out.split() if out else []
