"""Helpers shared by the PostgreSQL integration tests and the failover benchmark.

Everything runs on the lab's hosts over ssh: SQL as postgres on the database nodes, and as the Nextcloud role
through PgBouncer on a web node (127.0.0.1:6432), exactly the path Nextcloud uses.
"""
import json
import os
import re
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
        yaml.safe_dump(data, f, sort_keys=False)
    os.symlink(os.path.join(ROOT, "lab", "inventory", "group_vars"), os.path.join(path, "group_vars"))
    # The group structure (postgres = postgres_primary + postgres_standby, etcd), as the lab's inventory has it.
    os.symlink(os.path.join(ROOT, "lab", "inventory", "groups.yml"), os.path.join(path, "groups.yml"))
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


# ---------------------------------------------------------------------------------------------------------------
# Patroni (issue #21). Who leads NOW is asked of Patroni, never of the inventory groups: postgres_primary only says
# which host bootstrapped the cluster. The REST API (8008) is reached from the controller (the lab's trusted
# network); unsafe endpoints with basic auth (user patroni, nextcloud_ha_patroni_rest_password).
# ---------------------------------------------------------------------------------------------------------------
PATRONI_CONFIG = "/etc/patroni/config.yml"
PATRONI_PORT = 8008
PATRONI_USER = LAB_VARS.get("patroni_rest_user", "patroni")
PATRONI_PASSWORD = LAB_VARS.get("nextcloud_ha_patroni_rest_password")


def _lab_inventory():
    path = os.path.join(INVENTORY, "hosts.yml")
    if not os.path.exists(path):
        return {}, {}
    with open(path) as f:
        data = yaml.safe_load(f)["all"]
    groups = {name: list((g or {}).get("hosts") or {}) for name, g in (data.get("children") or {}).items()}
    return {h: (v or {}).get("ansible_host", h) for h, v in (data.get("hosts") or {}).items()}, groups


ADDRESSES, GROUPS = _lab_inventory()
# Every Patroni member: the group `postgres` (children postgres_primary and postgres_standby).
POSTGRES = GROUPS.get("postgres_primary", []) + [
    h for h in GROUPS.get("postgres_standby", []) if h not in GROUPS.get("postgres_primary", [])]
ETCD = GROUPS.get("etcd", [])
WEBSERVERS = GROUPS.get("webservers", [])


def address(host):
    return ADDRESSES.get(host, host)


def rest(host, path, method="GET", body=None, auth=False, timeout=3):
    """One request to `host`'s Patroni REST API from the controller; returns (status, parsed JSON or text).

    status is None when the API does not answer (container stopped, network cut)."""
    import base64
    import json
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://%s:%d%s" % (address(host), PATRONI_PORT, path), data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        if not PATRONI_PASSWORD:
            raise AssertionError("nextcloud_ha_patroni_rest_password is not in the lab's group_vars")
        token = base64.b64encode(("%s:%s" % (PATRONI_USER, PATRONI_PASSWORD)).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (OSError, ValueError):  # refused, timed out, reset: no answer
        return None, None
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def leaders(hosts=None, timeout=3):
    """The members whose GET /primary answers 200 (what the web nodes' local HAProxy routes to)."""
    return [h for h in (hosts or POSTGRES) if rest(h, "/primary", timeout=timeout)[0] == 200]


class LeaderWatch:
    """Polls every member's GET /primary twice a second in the background (`with LeaderWatch() as w:`);
    w.samples = [(epoch, host, status or None)]. Bounded: stops with the block, or after `limit` seconds."""

    def __init__(self, hosts=None, limit=600):
        import threading
        self.hosts = list(hosts or POSTGRES)
        self.samples = []
        self.limit = limit
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(h,), daemon=True) for h in self.hosts]

    def _poll(self, host):
        end = time.time() + self.limit
        while not self.stop.is_set() and time.time() < end:
            at = time.time()
            self.samples.append((at, host, rest(host, "/primary", timeout=1)[0]))
            self.stop.wait(max(0.0, 0.5 - (time.time() - at)))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        return False

    def first_leading(self, host, after=0.0):
        """Epoch of the first 200 of `host` at or after `after` (None if none)."""
        return next((at for at, h, st in sorted(self.samples) if h == host and st == 200 and at >= after), None)

    def last_leading(self, host):
        return max((at for at, h, st in self.samples if h == host and st == 200), default=None)

    def leaders_seen(self, after=0.0):
        """Hosts that answered 200 at some time at or after `after`, in order of their first 200."""
        seen = []
        for at, h, st in sorted(self.samples):
            if st == 200 and at >= after and h not in seen:
                seen.append(h)
        return seen

    def both_at_once(self):
        """Poll rounds (within 0.5 s of each other) in which two members answered 200."""
        ok = sorted((at, h) for at, h, st in self.samples if st == 200)
        return [(a, b) for (ta, a), (tb, b) in zip(ok, ok[1:]) if a != b and tb - ta < 0.5]


def leader(timeout=60, hosts=None):
    """The one leader, waiting up to `timeout` seconds for exactly one; AssertionError otherwise."""
    found = wait_for(lambda: (lambda ls: ls[0] if len(ls) == 1 else None)(leaders(hosts)), timeout, interval=1)
    if not found:
        raise AssertionError("no single Patroni leader within %ss (GET /primary answers 200 on %s)"
                             % (timeout, leaders(hosts)))
    return found


def cluster(hosts=None):
    """GET /cluster from the first member that answers: {"members": [{name, role, state, timeline, lag, ...}]}."""
    for host in hosts or POSTGRES:
        status, body = rest(host, "/cluster")
        if status == 200 and isinstance(body, dict):
            return body
    raise AssertionError("no Patroni member answers GET /cluster")


def members(hosts=None):
    """{member name: member dict of GET /cluster}."""
    return {m["name"]: m for m in cluster(hosts).get("members", [])}


def timeline(hosts=None):
    """The leader's timeline as Patroni reports it (GET /cluster)."""
    lead = [m for m in cluster(hosts).get("members", []) if m.get("role") in ("leader", "master", "standby_leader")]
    return lead[0].get("timeline") if lead else None


def dynamic_config(hosts=None):
    """GET /config: the cluster's dynamic configuration (in the DCS)."""
    for host in hosts or POSTGRES:
        status, body = rest(host, "/config")
        if status == 200 and isinstance(body, dict):
            return body
    raise AssertionError("no Patroni member answers GET /config")


def patch_config(change, hosts=None):
    """PATCH /config (authenticated) on the first member that accepts it; returns the new dynamic config."""
    for host in hosts or POSTGRES:
        status, body = rest(host, "/config", method="PATCH", body=change, auth=True, timeout=10)
        if status == 200:
            return body
    raise AssertionError("no Patroni member accepted PATCH /config %s" % change)


def sync_standbys(hosts=None):
    return [name for name, m in members(hosts).items() if m.get("role") in ("sync_standby", "quorum_standby")]


def set_synchronous_mode(enabled, timeout=90):
    """Switch Patroni's synchronous_mode and wait until it is in force: with it on, a replica is the synchronous
    standby and the leader's synchronous_standby_names names it; off, the leader's setting is empty.
    Returns the previous value (for restore)."""
    before = bool(dynamic_config().get("synchronous_mode", False))
    if before != bool(enabled):
        patch_config({"synchronous_mode": bool(enabled)})

    def in_force():
        lead = leaders()
        if len(lead) != 1:
            return False
        names = sql(lead[0], "SHOW synchronous_standby_names", check=False)
        names = names.stdout.strip() if names.returncode == 0 else None
        if enabled:
            return bool(names) and bool(sync_standbys())
        return names == ""
    if not wait_for(in_force, timeout, interval=1):
        raise AssertionError("synchronous_mode=%s not in force within %ss: %s" % (enabled, timeout, cluster()))
    return before


def patronictl(host, args, timeout=60, check=True):
    """patronictl with the cluster's config on a member, as root."""
    res = run_ssh(host, "sudo patronictl -c %s %s" % (PATRONI_CONFIG, args), timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError("patronictl %s on %s failed (%d): %s %s"
                             % (args, host, res.returncode, res.stdout, res.stderr))
    return res


def patronictl_list(host=None):
    """`patronictl list -f json` from the first member that answers: a list of {Member, Host, Role, State, TL,
    Lag in MB, ...}."""
    import json
    for h in ([host] if host else POSTGRES):
        try:
            res = patronictl(h, "list -f json", timeout=30, check=False)
        except subprocess.TimeoutExpired:
            continue
        if res.returncode == 0:
            return json.loads(res.stdout)
    raise AssertionError("patronictl list answers on none of %s" % ([host] if host else POSTGRES))


def switchover(candidate, timeout=90):
    """Planned switchover to `candidate` through the REST API (POST /switchover); waits until it leads."""
    current = leader()
    if current == candidate:
        return current
    status, body = rest(current, "/switchover", method="POST", body={"leader": current, "candidate": candidate},
                        auth=True, timeout=60)
    if status != 200:
        raise AssertionError("switchover %s -> %s refused: %s %s" % (current, candidate, status, body))
    if wait_for(lambda: leaders() == [candidate], timeout, interval=1) is not True:
        raise AssertionError("%s does not lead %ss after the switchover: %s" % (candidate, timeout, leaders()))
    return current


def healthy(timeout=180, hosts=None):
    """Wait until every member runs, exactly one leads and every other one streams from it; returns the members
    (GET /cluster) or raises AssertionError with the last state seen."""
    hosts = hosts or POSTGRES
    last = {}

    def check():
        last.clear()
        try:
            last.update(members(hosts))
        except AssertionError:
            return False
        roles = [m.get("role") for m in last.values()]
        lead = [n for n, m in last.items() if m.get("role") in ("leader", "master")]
        return (set(last) == set(hosts) and len(lead) == 1 and roles.count("leader") + roles.count("master") == 1
                and all(m.get("state") in ("running", "streaming") for m in last.values())
                and all(sql(n, "SELECT status FROM pg_stat_wal_receiver", check=False).stdout.strip() == "streaming"
                        for n in last if n not in lead))
    if not wait_for(check, timeout, interval=2):
        raise AssertionError("the Patroni cluster is not healthy within %ss: %s" % (timeout, last))
    return dict(last)


def system_identifier(host):
    return sql(host, "SELECT system_identifier FROM pg_control_system()")


def data_directory(host):
    return sql(host, "SHOW data_directory")


def ensure_probe_table(web=None):
    bouncer_sql(web or WEBSERVERS[0], "CREATE TABLE IF NOT EXISTS ha_probe (id bigserial PRIMARY KEY, "
                                      "token text NOT NULL, at timestamptz DEFAULT now())")


# A writer ON a database server (unix socket, as postgres): it reaches its server whatever the network does, so
# that a cut-off server's writes are seen too. synchronous_commit=local: a commit is acknowledged once it is on the
# server's own disk, so the writer tells exactly when a server accepts writes, in synchronous mode as well.
# Each line: 'ok HOST TOKEN T_INSERT T_AFTER' (server clock: the INSERT's clock_timestamp() and one taken after
# the commit) or 'fail HOST TOKEN EPOCH'. The lab's containers share the host's clock.
LOCAL_WRITER = r"""
end=$(( $(date +%%s) + %(seconds)d ))
i=0
while [ "$(date +%%s)" -lt "$end" ]; do
    i=$((i + 1))
    out=$(timeout 5 runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d %(db)s \
          -c "SET synchronous_commit = local" \
          -c "INSERT INTO ha_probe (token) VALUES ('%(prefix)s-$i') RETURNING extract(epoch FROM clock_timestamp())" \
          -c "SELECT extract(epoch FROM clock_timestamp())" 2>/dev/null)
    rc=$?
    out=$(echo $out)
    if [ $rc -eq 0 ] && [ "$(echo $out | wc -w)" -eq 2 ]; then
        echo "ok %(host)s %(prefix)s-$i $out"
    else
        echo "fail %(host)s %(prefix)s-$i $(date +%%s.%%N)"
    fi
    sleep %(pause)s
done
"""


def start_local_writer(host, prefix, seconds, pause=0.1):
    """Write rows on `host` itself (see LOCAL_WRITER) for `seconds`; returns the running Popen."""
    script = LOCAL_WRITER % {"seconds": seconds, "db": DB_NAME, "prefix": prefix, "host": host, "pause": pause}
    proc = subprocess.Popen(["ssh", "-F", SSH_CONFIG, host, "sudo bash -s"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def local_writer_results(proc, timeout=600):
    """[(host, token, t_insert, t_after)] of the acknowledged writes, and the count of failed ones."""
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    ok, failed = [], 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "ok":
            ok.append((parts[1], parts[2], float(parts[3]), float(parts[4])))
        elif parts and parts[0] == "fail":
            failed += 1
    return ok, failed


def writer_overlaps(successes):
    """Pairs of servers that both acknowledged writes at the same moment: [(host_a, host_b, overlap seconds)].

    Each server's writing interval runs from its first acknowledged INSERT to the commit of its last one; two
    servers' intervals must not intersect (one writer at a time)."""
    spans = {}
    for host, _, t_insert, t_after in successes:
        first, last = spans.get(host, (t_insert, t_after))
        spans[host] = (min(first, t_insert), max(last, t_after))
    hosts = sorted(spans)
    found = []
    for i, a in enumerate(hosts):
        for b in hosts[i + 1:]:
            overlap = min(spans[a][1], spans[b][1]) - max(spans[a][0], spans[b][0])
            if overlap > 0:
                found.append((a, b, round(overlap, 3)))
    return found


NFT_TABLE = "ncha_test_cut"


def cut_off(host, peers, undo_after=240):
    """Drop every packet between `host` and the addresses of `peers` (nftables, a table of the test's own,
    input and output, ahead of the cluster firewall); the controller (ssh, tests) keeps its access.

    A timer on the host removes the table after `undo_after` seconds whatever happens to the test; heal() removes
    it at once."""
    addrs = ", ".join(sorted(address(p) for p in peers if p != host))
    ruleset = ("table inet %(t)s {\n"
               "  chain input { type filter hook input priority -10; policy accept;"
               " ip saddr { %(a)s } drop; }\n"
               "  chain output { type filter hook output priority -10; policy accept;"
               " ip daddr { %(a)s } drop; }\n"
               "}\n") % {"t": NFT_TABLE, "a": addrs}
    res = run_ssh(host, "sudo bash -c %s" % shlex.quote(
        "systemd-run --quiet --unit=ncha-test-heal-$$ --on-active=%d /usr/sbin/nft delete table inet %s; "
        "nft -f -" % (undo_after, NFT_TABLE)), input_=ruleset, timeout=30)
    if res.returncode != 0:
        raise AssertionError("nft on %s failed: %s %s" % (host, res.stdout, res.stderr))
    return time.time()


def heal(host):
    """Remove the test's nftables table from `host` (no error when it is gone)."""
    return run_ssh(host, "sudo systemctl stop 'ncha-test-heal-*.timer' 2>/dev/null; "
                         "sudo nft delete table inet %s 2>/dev/null; sudo nft list table inet %s >/dev/null 2>&1 "
                         "&& exit 1 || exit 0" % (NFT_TABLE, NFT_TABLE), timeout=30)


def etcd(host, action):
    """systemctl start/stop of etcd on an etcd member."""
    res = run_ssh(host, "sudo systemctl %s etcd" % action, timeout=90)
    if res.returncode != 0:
        raise AssertionError("systemctl %s etcd on %s: %s" % (action, host, res.stderr))


def etcd_healthy(timeout=60, hosts=None):
    """Every etcd member's GET /health answers {"health": "true"} (from the controller, the lab's trusted network;
    https when the lab runs etcd with TLS)."""
    import json
    import ssl
    import urllib.request
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def one(host):
        for scheme in ("http", "https"):
            try:
                with urllib.request.urlopen("%s://%s:2379/health" % (scheme, address(host)), timeout=3,
                                            context=context if scheme == "https" else None) as resp:
                    return json.loads(resp.read()).get("health") in ("true", True)
            except (OSError, ValueError):
                continue
        return False
    return wait_for(lambda: all(one(h) for h in (hosts or ETCD)), timeout, interval=2)


def files_and_services(host, files, services, extra):
    """What a refused run must leave alone on `host`: sha256 and mtime of `files` (those present), the start time of
    `services`, and the output of the shell command `extra`."""
    script = ("for f in %s; do [ -e $f ] && echo \"$f $(sha256sum < $f | cut -c1-64) $(stat -c %%Y $f)\"; done; "
              "for s in %s; do echo \"$s $(systemctl show -p ActiveEnterTimestampMonotonic --value $s.service)\"; "
              "done; %s" % (" ".join(files), " ".join(services), extra))
    res = run_ssh(host, "sudo bash -c %s" % json.dumps(script), timeout=60)
    assert res.returncode == 0, (host, res.stderr)
    return res.stdout


def failure_messages(output):
    """The message of every failed task (assert's fail_msg), as ansible-playbook prints it: an '[ERROR]: Task
    failed: Action failed: ...' line, or a YAML `msg: '...'` block under 'fatal: [host]: FAILED! =>'."""
    found = re.findall(r"\[ERROR\]: Task failed: Action failed: (.*)", output)
    for block in re.findall(r"^\s+msg: '((?:[^']|'')*)'", output, flags=re.M):
        found.append(" ".join(block.replace("''", "'").split()))
    for block in re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', output):
        found.append(block)
    return found


def inventory_edited(groups=None, drop=(), host_vars=None):
    """Write a copy of the lab's inventory with groups replaced ({group: [hosts]}), groups in `drop` removed
    (also from groups.yml's structure, so that the group does not exist at all) and variables set on hosts
    ({host: {variable: value}}); returns its directory."""
    with open(os.path.join(INVENTORY, "hosts.yml")) as f:
        data = yaml.safe_load(f)
    for host, variables in (host_vars or {}).items():
        data["all"]["hosts"][host].update(variables)
    children = data["all"]["children"]
    for name, hosts in (groups or {}).items():
        children[name] = {"hosts": {h: {} for h in hosts}}
    for name in drop:
        children.pop(name, None)
    with open(os.path.join(INVENTORY, "groups.yml")) as f:
        structure = yaml.safe_load(f)
    for name in drop:
        (structure["all"].get("children") or {}).pop(name, None)
    path = tempfile.mkdtemp(prefix="pginv-")
    with open(os.path.join(path, "hosts.yml"), "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    with open(os.path.join(path, "groups.yml"), "w") as f:
        yaml.safe_dump(structure, f, sort_keys=False)
    os.symlink(os.path.join(ROOT, "lab", "inventory", "group_vars"), os.path.join(path, "group_vars"))
    return path
