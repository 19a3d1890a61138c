"""Scale out and in (issue #10): a third web node joins with site.yml alone, and leaves the same way.

Needs the cluster deployed (`python -m lab deploy`). The test starts the lab's optional web3 container
(`LAB_EXTRA_HOSTS=web3 python -m lab up`, lab/topology.yml's extra_hosts), runs site.yml, and checks on the servers:
HAProxy's runtime API lists web3 UP, requests through HAProxy are answered by web3 (probe.php names the node), web3
serves the master's codebase (a marker file put on the master only), its PgBouncer and Redis proxy answer, the
database hosts' firewall lets it in; a second site.yml run changes nothing. Then site.yml runs with an inventory
without web3, under a light load through HAProxy: HAProxy no longer lists web3, no request fails, web3 gets no
more requests and the database hosts' firewall no longer lets it in. The lab ends as it was: the web3 container is
removed (`python -m lab up` without LAB_EXTRA_HOSTS).
"""
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

import loadgen
from conftest import require
from ha_helpers import recap_changed
from lab_paths import INVENTORY, LAB_NAME, LAB_VARS, PLAYBOOK, ROOT, SSH_CONFIG, STATE

pytestmark = pytest.mark.disruptive

NEW = "web3"
MASTER = "web1"
DOMAIN = LAB_VARS.get("nextcloud_ha_domain", "cloud.example.org")
WEBROOT = "/var/www/nextcloud"
MARKER = "lib/scaletest-%d.php" % os.getpid()
ADMIN_SOCKET = "/run/haproxy/admin.sock"


def hosts_yml(path=INVENTORY):
    with open(os.path.join(path, "hosts.yml")) as f:
        return yaml.safe_load(f)


def address(host):
    return hosts_yml()["all"]["hosts"][host]["ansible_host"]


def group(name, path=INVENTORY):
    return list((hosts_yml(path)["all"]["children"].get(name) or {}).get("hosts") or {})


def sudo(host, command, timeout=120):
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, "sudo bash -c %s" % shlex.quote(command)],
                          capture_output=True, text=True, timeout=timeout)


def lab(*args, extra_hosts="", timeout=900):
    env = dict(os.environ, LAB_NAME=LAB_NAME, LAB_NEXTCLOUD="standin", LAB_EXTRA_HOSTS=extra_hosts)
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "lab"] + list(args), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def site(inventory=INVENTORY, timeout=2400):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([PLAYBOOK, "-i", inventory, os.path.join(ROOT, "site.yml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def changed_tasks(output):
    """The 'changed:' lines with the task above them, for a readable failure."""
    out, task = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            out.append("%s %s" % (task, line))
    return out


def servers_state(lb, backend="nextcloud"):
    """{server name: operational state} from HAProxy's runtime API (`show servers state`); 2 is UP."""
    r = sudo(lb, "echo 'show servers state %s' | socat stdio %s" % (backend, ADMIN_SOCKET))
    assert r.returncode == 0, r.stderr
    states = {}
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[0].isdigit():
            states[fields[3]] = int(fields[5])
    return states


def probe_load(lb, rate, duration, tag="", **kw):
    """probe.php through HAProxy; every answer names the node (a PHP gethostname())."""
    hosts = hosts_yml()["all"]["hosts"]
    url = "https://%s/probe.php?checks=none%s" % (hosts[lb]["ansible_host"], "&tag=" + tag if tag else "")
    return loadgen.run(url, rate=rate, duration=duration,
                       allowed=[h["ansible_host"] for h in hosts.values()], host_header=DOMAIN, threads=4, **kw)


def wait_up(lb, server, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = servers_state(lb)
        if states.get(server) == 2:
            return states
        time.sleep(2)
    return servers_state(lb)


def tree_digest(host):
    """The codebase as nc_sync compares it: every path, type, mode, owner and size, without node-local files."""
    cmd = ("cd %s/ && find . -mindepth 1 \\( -path ./data -o -path ./config/node.config.php \\) -prune -o "
           "-printf '%%P %%y %%m %%U %%G %%s\\n' | sort | sha256sum" % WEBROOT)
    r = sudo(host, cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


def firewall_allows(host, addr, port):
    """True when the host's nftables ruleset has an accept rule for the TCP port whose source addresses include the
    address (nft prints neighbouring addresses as a range, a-b). Fails when the host has no such rule at all."""
    r = sudo(host, "nft list ruleset")
    assert r.returncode == 0 and "table" in r.stdout, r.stderr
    rules = [line for line in r.stdout.splitlines()
             if re.search(r"dport (\{[^}]*\b%d\b[^}]*\}|%d\b)" % (port, port), line) and "accept" in line]
    assert rules, r.stdout
    ip = ipaddress.ip_address(addr)
    for line in rules:
        for first, _, last in re.findall(r"(\d+\.\d+\.\d+\.\d+)(-(\d+\.\d+\.\d+\.\d+))?", line):
            if ipaddress.ip_address(first) <= ip <= ipaddress.ip_address(last or first):
                return True
    return False


def openings(cluster, addr):
    """{(host, port): allowed} for the flows a web node needs: PostgreSQL on the database hosts, Redis on the Redis
    hosts, ssh on the master web node (codebase export)."""
    flows = [(db, 5432) for db in cluster["db"]] + [(r, 6379) for r in cluster["redis"]] + [(MASTER, 22)]
    return {flow: firewall_allows(flow[0], addr, flow[1]) for flow in flows}


def cfg_servers(lb):
    """The server names of haproxy.cfg's nextcloud backend, as written on the load balancer."""
    r = sudo(lb, "cat /etc/haproxy/haproxy.cfg")
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"^\s+server (\S+) ", r.stdout, re.M))


def access_lines(host, tag):
    r = sudo(host, "cat /var/log/apache2/*access*.log 2>/dev/null | grep -c -F %s || true" % shlex.quote(tag))
    return int(r.stdout.strip() or 0)


@pytest.fixture(scope="module")
def cluster():
    web = group("webservers")
    lb = group("haproxy")[0]
    r = sudo(MASTER, "curl -fsS -m 10 http://127.0.0.1/status.php")
    require(r.returncode == 0 and '"installed":true' in r.stdout.replace(" ", ""),
            "needs the cluster deployed (`python -m lab deploy`): %s" % (r.stdout or r.stderr))
    assert NEW not in web, "the lab already has %s in its inventory: run `python -m lab up` without " \
                           "LAB_EXTRA_HOSTS first" % NEW
    return {"lb": lb, "web": web, "db": group("postgres_primary") + group("postgres_standby"),
            "redis": group("redis")}


@pytest.fixture(scope="module")
def scaled_out(cluster):
    """web3 started by the lab and joined by site.yml; the site.yml output."""
    r = sudo(MASTER, "echo '<?php // scale-out marker %d' > %s/%s && chown www-data:www-data %s/%s"
             % (os.getpid(), WEBROOT, MARKER, WEBROOT, MARKER))
    assert r.returncode == 0, r.stderr
    lab("up", extra_hosts=NEW)
    assert NEW in group("webservers"), "the lab did not add %s to the inventory" % NEW
    t0 = time.time()
    proc = site()
    print("site.yml with %s: %.0f s" % (NEW, time.time() - t0))
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    return proc


def test_haproxy_lists_the_new_node_up(scaled_out, cluster):
    states = wait_up(cluster["lb"], NEW)
    assert states.get(NEW) == 2, states
    assert {NEW, NEW + "-failopen"} <= set(states), states
    assert {s for s in states if not s.endswith("-failopen")} == set(cluster["web"]) | {NEW}, states
    assert {NEW, NEW + "-failopen"} <= cfg_servers(cluster["lb"])


def test_requests_through_haproxy_reach_the_new_node(scaled_out, cluster):
    run = probe_load(cluster["lb"], rate=10, duration=3)
    assert not run.failed, run.summary()
    assert set(run.by_host()) == set(cluster["web"]) | {NEW}, run.summary()


def test_new_node_serves_the_master_codebase(scaled_out):
    r = sudo(NEW, "cat %s/%s" % (WEBROOT, MARKER))
    assert r.returncode == 0 and "scale-out marker %d" % os.getpid() in r.stdout, (r.stdout, r.stderr)
    assert tree_digest(NEW) == tree_digest(MASTER)
    status = {h: sudo(h, "curl -fsS -m 10 http://127.0.0.1/status.php").stdout for h in (MASTER, NEW)}
    assert '"installed":true' in status[NEW].replace(" ", "") and status[NEW] == status[MASTER], status


def test_new_node_reaches_the_database_and_redis(scaled_out, cluster):
    # Through its own PgBouncer and Redis proxy: the probe's db and redis checks, asked on web3 itself.
    r = sudo(NEW, "curl -sS -m 20 -H 'Host: %s' 'http://127.0.0.1/probe.php?checks=db,redis'" % DOMAIN)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["hostname"] == NEW and body["db"]["ok"] and body["redis"]["ok"] and body["ok"], body
    allowed = openings(cluster, address(NEW))
    assert all(allowed.values()), "firewalls that do not let %s in: %s" % (NEW, [f for f, ok in allowed.items() if not ok])
    # The new node's own firewall is in place: the load balancer may reach its port 80, another web node may not.
    assert firewall_allows(NEW, address(cluster["lb"]), 80)
    assert not firewall_allows(NEW, address(cluster["web"][-1]), 80)


def test_second_site_run_changes_nothing(scaled_out):
    proc = site()
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    print("\n".join(line for line in proc.stdout.splitlines() if " : ok=" in line))
    changed = recap_changed(proc.stdout)
    assert changed and not any(changed.values()), "\n".join(changed_tasks(proc.stdout)) or changed


def test_removing_the_node_drains_it_out_of_haproxy(scaled_out, cluster):
    lb = cluster["lb"]
    # The master's tree goes back to what it was before the test; the run below syncs that to web2.
    sudo(MASTER, "rm -f %s/%s" % (WEBROOT, MARKER))
    # An inventory without web3: the lab's generated hosts.yml minus the node, beside the same group_vars.
    tmp = tempfile.mkdtemp(prefix="scalein-", dir=STATE)
    try:
        data = hosts_yml()
        del data["all"]["hosts"][NEW]
        for g in data["all"]["children"].values():
            (g.get("hosts") or {}).pop(NEW, None)
        with open(os.path.join(tmp, "hosts.yml"), "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        for entry in ("groups.yml", "group_vars"):
            os.symlink(os.path.join(ROOT, "lab", "inventory", entry), os.path.join(tmp, entry))
        # A light load through HAProxy for the whole run: the node leaves without a failed request.
        done = threading.Event()
        runs = []

        def background():
            while not done.is_set():
                runs.append(probe_load(lb, rate=2, duration=10))

        worker = threading.Thread(target=background, daemon=True)
        worker.start()
        t0 = time.time()
        proc = site(tmp)
        done.set()
        worker.join(timeout=60)
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
        print("site.yml without %s: %.0f s" % (NEW, time.time() - t0))
        print("\n".join(changed_tasks(proc.stdout)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    states = servers_state(lb)
    assert NEW not in states and NEW + "-failopen" not in states, states
    assert cfg_servers(lb) == set(cluster["web"]) | {w + "-failopen" for w in cluster["web"]}
    assert set(states) == set(cluster["web"]) | {w + "-failopen" for w in cluster["web"]}, states
    failed = [r for run in runs for r in run.failed]
    total = sum(run.total for run in runs)
    assert total > 0 and not failed, "%d of %d requests failed during the scale-in run: %s" % (
        len(failed), total, [run.summary() for run in runs if run.failed])
    # web3 still runs, but HAProxy sends it nothing more; the others answer everything.
    tag = "scalein%d" % os.getpid()
    run = probe_load(lb, rate=10, duration=3, tag=tag)
    assert not run.failed, run.summary()
    assert set(run.by_host()) == set(cluster["web"]), run.summary()
    assert access_lines(NEW, tag) == 0
    assert sum(access_lines(w, tag) for w in cluster["web"]) >= run.total
    allowed = openings(cluster, address(NEW))
    assert not any(allowed.values()), "firewalls that still let %s in: %s" % (NEW, [f for f, ok in allowed.items() if ok])
    # The others keep their openings.
    allowed = openings(cluster, address(cluster["web"][-1]))
    assert all(allowed.values()), "firewalls that no longer let %s in: %s" % (
        cluster["web"][-1], [f for f, ok in allowed.items() if not ok])


def test_lab_back_to_its_default_topology(scaled_out):
    lab("up")
    assert NEW not in group("webservers")
    r = subprocess.run(["podman", "container", "exists", "%s-%s" % (LAB_NAME, NEW)], capture_output=True)
    assert r.returncode != 0, "the %s container is still there" % NEW
