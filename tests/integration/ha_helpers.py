"""Helpers shared by the Redis and HAProxy integration tests and the HAProxy benchmark.

Everything talks to the lab's own containers: commands over ssh (the lab's ssh_config), containers stopped and
started with podman under this lab's name, HTTP only to the lab's load balancer and web nodes.
"""
import os
import shlex
import subprocess
import time

import yaml

import loadgen

from lab_paths import INVENTORY, LAB_NAME, LAB_VARS, PLAYBOOK, ROOT, SSH_CONFIG, STATE  # noqa: F401 (re-exported)
REDIS_USER = LAB_VARS.get("nextcloud_ha_redis_user", "nextcloud")
REDIS_PASSWORD = LAB_VARS["nextcloud_ha_redis_password"]
REDIS_ADMIN_PASSWORD = LAB_VARS["nextcloud_ha_redis_admin_password"]
STATS_PASSWORD = LAB_VARS["nextcloud_ha_haproxy_stats_password"]
DOMAIN = LAB_VARS.get("nextcloud_ha_domain", "cloud.example.org")
# What a request of the load does (the stand-in, as a Nextcloud page view would): the login page reads and writes
# the distributed cache (Redis through the local proxy; 503 when Redis fails), the probe writes a row through
# PgBouncer and a file into the data directory under a key of its own, and names the node that answered.
# (probe.php's own db/redis checks use one key per node, which concurrent requests overwrite: not usable under load.)
PROBE = "/probe.php?checks=none"
# Three entries, so that round-robin over two nodes sends every kind of request to every node.
WORKLOAD = ["/index.php/login", "/probe.php?checks=none&write=lt-{run}-{n}", "/probe.php?checks=none&write=lt-{run}-{n}"]
ADMIN_SOCKET = "/run/haproxy/admin.sock"
PROXY_SOCKET = "/run/nextcloud-ha-local-proxy/admin.sock"  # the web nodes' local proxy (role local_proxy)


def load_inventory():
    with open(os.path.join(INVENTORY, "hosts.yml")) as f:
        data = yaml.safe_load(f)["all"]
    hosts = {h: v["ansible_host"] for h, v in data["hosts"].items()}
    groups = {name: list((g or {}).get("hosts") or {}) for name, g in data.get("children", {}).items()}
    return hosts, groups, data.get("vars") or {}


HOSTS, GROUPS, INVENTORY_VARS = (load_inventory() if os.path.exists(os.path.join(INVENTORY, "hosts.yml"))
                                 else ({}, {}, {}))
# The load balancers' floating address (keepalived; docs/keepalived.md) when the lab has two of them.
VIP = INVENTORY_VARS.get("haproxy_vip") or None
# Where clients reach the cloud: the floating address, else the first load balancer.
ENTRANCE = VIP or HOSTS.get((GROUPS.get("haproxy") or [None])[0])


def run_ssh(host, command, timeout=60, input_=None):
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, command], capture_output=True, text=True,
                          timeout=timeout, input=input_)


def sudo(host, command, timeout=60, check=True):
    res = run_ssh(host, "sudo bash -c %s" % shlex.quote(command), timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError("%s on %s failed (%d): %s %s" % (command, host, res.returncode, res.stdout, res.stderr))
    return res


def kill_export_tar(master, after_bytes, timeout=150):
    """Kill the sync export's tar on ``master`` once it has read ``after_bytes`` (a transfer cut half way).

    Watched on the master itself every 50 ms (/proc/PID/io), since the lab's volumes stream a few hundred MB in a
    second or two, faster than a poll over ssh. Returns the bytes its tar had read, or None when no such tar came
    (or it ended before reading that much) within ``timeout`` seconds."""
    watch = ("for i in $(seq %d); do p=$(pgrep -u ncsync -f -- '^tar -c -f - -C' | head -n 1); "
             "if [ -n \"$p\" ]; then r=$(awk '/^rchar/ {print $2}' /proc/$p/io 2>/dev/null); "
             "if [ \"${r:-0}\" -gt %d ]; then kill -9 \"$p\"; echo \"$r\"; exit 0; fi; fi; sleep 0.05; done; "
             "exit 1" % (int(timeout * 20), int(after_bytes)))
    r = sudo(master, watch, timeout=timeout + 60, check=False)
    return int(r.stdout.split()[-1]) if r.returncode == 0 else None


def container(action, host, timeout=120):
    """podman stop/start of one of this lab's containers."""
    name = "%s-%s" % (LAB_NAME, host)
    res = subprocess.run(["podman", action] + (["-t", "2"] if action == "stop" else []) + [name],
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError("podman %s %s: %s" % (action, name, res.stderr))


def wait_ssh(host, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if run_ssh(host, "systemctl is-system-running --wait >/dev/null 2>&1; true", timeout=30).returncode == 0:
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
    raise AssertionError("%s does not answer over ssh after %ss" % (host, timeout))


def redis_cli(host, args, admin=False, target="127.0.0.1", port=6379, user=None, timeout=30):
    """redis-cli on `host` against target:port, authenticated (password in the environment, not argv)."""
    password = REDIS_ADMIN_PASSWORD if admin else REDIS_PASSWORD
    user = user or ("admin" if admin else REDIS_USER)
    command = "REDISCLI_AUTH=%s redis-cli --no-auth-warning --user %s -h %s -p %d %s" % (
        shlex.quote(password), shlex.quote(user), shlex.quote(target), port, args)
    return run_ssh(host, command, timeout=timeout)


def sentinel_cli(host, args, timeout=30):
    return run_ssh(host, "REDISCLI_AUTH=%s redis-cli --no-auth-warning -h 127.0.0.1 -p 26379 %s" % (
        shlex.quote(REDIS_ADMIN_PASSWORD), args), timeout=timeout)


def redis_role(host):
    """'master' or 'slave' (what INFO replication says on `host`), or None when it does not answer."""
    res = redis_cli(host, "info replication", admin=True)
    for line in res.stdout.splitlines():
        if line.startswith("role:"):
            return line.split(":", 1)[1].strip()
    return None


def current_master(redis_hosts):
    masters = [h for h in redis_hosts if redis_role(h) == "master"]
    return masters


def servers_state(lb, backend="nextcloud", socket=ADMIN_SOCKET):
    """{server name: (operational state, admin state)} from the runtime API (`show servers state`)."""
    res = sudo(lb, "echo 'show servers state %s' | socat stdio %s" % (backend, socket))
    states = {}
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[0].isdigit():
            states[fields[3]] = (int(fields[5]), int(fields[6]))
    return states


def runtime(lb, command, socket=ADMIN_SOCKET):
    return sudo(lb, "echo %s | socat stdio %s" % (shlex.quote(command), socket)).stdout.strip()


def lb_probe_url(lb):
    return "https://%s%s" % (HOSTS.get(lb, lb), PROBE)


def workload_urls(base):
    """The load's URLs on `base` (https://<lb> or http://<web node>)."""
    return [base + path for path in WORKLOAD]


def clean_workload_files():
    """Remove the files the load's probe writes into each web node's data directory."""
    for web in GROUPS.get("webservers", []):
        sudo(web, "d=$(php -r 'include \"/var/www/nextcloud/config/config.php\"; echo $CONFIG[\"datadirectory\"];')"
                  " && find \"$d/probe\" -maxdepth 1 -name 'lt-*' -type f -delete", check=False)


def allowed_addresses():
    """Where tests may send traffic: the lab's hosts and the load balancers' floating address."""
    return list(HOSTS.values()) + ([VIP] if VIP else [])


def vip_holders():
    """The load balancers that have the floating address on an interface now (one, when all is well)."""
    return [lb for lb in GROUPS.get("haproxy", [])
            if run_ssh(lb, "ip -4 -o addr show | grep -qF ' %s/'" % VIP, timeout=15).returncode == 0]


def load(url, rate=100, duration=24, events=(), threads=12):
    return loadgen.run(url, rate=rate, duration=duration, allowed=allowed_addresses(), host_header=DOMAIN,
                       threads=threads, events=events)


def playbook(name, extra=(), timeout=900):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    return subprocess.run([PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", name)] + list(extra),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def recap_changed(output):
    """{host: changed count} from an ansible-playbook PLAY RECAP."""
    changed = {}
    for line in output.splitlines():
        if " : ok=" in line and "changed=" in line:
            host = line.split()[0]
            changed[host] = int(line.split("changed=")[1].split()[0])
    return changed


def web_tier_ready(lb):
    """True when the load balancer answers the stand-in's probe (the web tier is deployed)."""
    try:
        run = loadgen.run(lb_probe_url(lb), rate=5, duration=1, allowed=allowed_addresses(), host_header=DOMAIN,
                          threads=1)
    except Exception:
        return False
    return run.total > 0 and not run.failed


def fpm_service(web):
    res = sudo(web, "systemctl list-unit-files --no-legend 'php*-fpm.service' | awk '{print $1}' | head -1")
    name = res.stdout.strip()
    assert name, "no php-fpm unit on %s" % web
    return name


def state_changes(lb, server, since, unit="haproxy", backend="nextcloud"):
    """[(unix time, "UP"|"DOWN")] of `server` from HAProxy's own log lines ("Server nextcloud/web2 is DOWN")."""
    res = sudo(lb, "journalctl -u %s -o short-unix --no-pager --since @%d | grep -F 'Server %s/%s is ' || true"
               % (unit, int(since) - 1, backend, server))
    changes = []
    for line in res.stdout.splitlines():
        stamp = float(line.split()[0])
        state = "UP" if (" is UP" in line) else "DOWN" if (" is DOWN" in line) else None
        if state and stamp >= since - 1:
            changes.append((stamp, state))
    return sorted(set(changes))


def scenario(name, lb, server, stop, start, *, rate=100, duration=25, stop_at=5.0, start_at=15.0,
             return_timeout=120):
    """Run a bounded load through the load balancer while `stop` and later `start` run; returns the figures.

    left_rotation_s: from the end of the stop action to HAProxy logging `server` DOWN;
    returned_s: from the end of the start action to HAProxy logging it UP again (waits up to return_timeout).
    Times are wall-clock: the lab's containers share the host's clock.
    """
    times = {}

    def do(key, action):
        def event():
            times[key] = time.time()
            action()
            times[key + "_done"] = time.time()
        return event

    began = time.time()
    run = load(workload_urls("https://%s" % HOSTS[lb]), rate=rate, duration=duration,
               events=[(stop_at, do("stop", stop)), (start_at, do("start", start))])
    clean_workload_files()
    deadline = time.monotonic() + return_timeout
    while time.monotonic() < deadline and servers_state(lb).get(server, (0, 0))[0] != 2:
        time.sleep(1)
    changes = state_changes(lb, server, began)
    down = [t for t, state in changes if state == "DOWN" and t >= times.get("stop", began)]
    up = [t for t, state in changes if state == "UP" and t >= times.get("start", began)]
    figures = run.summary()
    figures.update({
        "scenario": name,
        "left_rotation_s": round(max(0.0, down[0] - times["stop_done"]), 2) if down and "stop_done" in times else None,
        "returned_s": round(max(0.0, up[0] - times["start_done"]), 2) if up and "start_done" in times else None,
    })
    return figures
