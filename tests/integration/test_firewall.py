"""The cluster firewall (issues #9, #21): real connections between the lab's hosts.

From every cluster host, a bounded scan of the cluster's ports on every other cluster host: each flow of the
design notes' port matrix connects, every other port is dropped (times out) or refused. The expected matrix is
restated here from the groups, independently of the role's template. Then a ruleset that would lock the
controller out is rolled back by itself.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT, STATE, ssh

PORTS = {"ssh": 22, "http": 80, "https": 443, "postgres": 5432, "redis": 6379, "pgbouncer": 6432, "stats": 8404,
         "sentinel": 26379, "etcd": 2379, "etcd-peer": 2380, "patroni": 8008}
SCAN = r"""
import json, socket, sys, concurrent.futures as cf
def probe(target):
    addr, port = target
    s = socket.socket(); s.settimeout(1.5)
    try:
        s.connect((addr, port)); return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "dropped"
    finally:
        s.close()
targets = [tuple(t) for t in json.load(sys.stdin)]
with cf.ThreadPoolExecutor(64) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


def expected_open(groups, src, dst, port):
    """The flows the cluster needs (roles/firewall README), from the inventory groups."""
    web = groups.get("webservers", [])
    redis = groups.get("redis", [])
    lbs = groups.get("haproxy", [])
    sentinels = (redis + (groups.get("redis_sentinel") or lbs[:1])) if len(redis) > 1 else []
    pg = groups.get("postgres") or groups.get("postgres_primary", []) + groups.get("postgres_standby", [])
    etcd = groups.get("etcd", [])
    flows = [
        (lbs, None, [80, 443]),                      # clients (any address) to the load balancer
        (web, lbs, [80]),                            # load balancer to the web nodes
        (web[:1], web[1:], [22]),                    # codebase sync: the other web nodes pull from the master
        (redis, web + redis + sentinels, [6379]),    # Redis clients, replicas, Sentinels
        (sentinels, sentinels, [26379]),             # Sentinels to Sentinels
        (pg, web, [5432]),                           # PgBouncer on the web nodes to PostgreSQL
        (pg, pg, [5432]),                            # replication (pgBackRest's ssh goes to and from the backup host)
        (pg, web + pg, [8008]),                      # Patroni's REST API: local proxy checks, the other members
        (etcd, etcd, [2380]),                        # etcd peers
        (etcd, etcd + pg, [2379]),                   # etcd clients: the members, Patroni
    ]
    return any(dst in to and (sources is None or src in sources) and port in ports for to, sources, ports in flows)


@pytest.fixture(scope="module")
def cluster(inventory):
    names = ("haproxy", "webservers", "redis", "redis_sentinel", "postgres_primary", "postgres_standby", "etcd")
    hosts = sorted({h for g in names for h in inventory.group(g)})
    groups = {g: inventory.group(g) for g in names}
    # The postgres group's hosts are those of its children (the generated inventory lists the children's hosts).
    groups["postgres"] = groups["postgres_primary"] + groups["postgres_standby"]
    return hosts, groups


def scan(inventory, src, dsts):
    targets = [(inventory.address(d), p) for d in dsts for p in PORTS.values()]
    res = subprocess.run(["ssh", "-F", os.path.join(STATE, "ssh_config"), src, "python3 -c %s" % _q(SCAN)],
                         input=json.dumps(targets), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    states = json.loads(res.stdout)
    return {(d, p): s for (d, p), s in zip([(d, p) for d in dsts for p in PORTS.values()], states)}


def _rules(listing):
    """A table's rules without counter values, and with one-element sets unwrapped (nft prints both ways)."""
    listing = re.sub(r"packets \d+ bytes \d+", "", listing)
    return re.sub(r"\{ ([^,{}]+) \}", r"\1", listing)


def _q(text):
    return "'" + text.replace("'", "'\\''") + "'"


def test_every_host_has_the_firewall_loaded_and_enabled(lab_host, cluster):
    hosts, _ = cluster
    for name in hosts:
        host = lab_host(name)
        table = host.run("sudo nft list chain inet nextcloud_ha input")
        assert table.rc == 0, (name, table.stderr)
        assert "policy drop" in table.stdout, name
        assert host.service("nextcloud-ha-firewall").is_enabled, name


def test_only_the_cluster_flows_connect_between_hosts(inventory, cluster):
    hosts, groups = cluster
    wrong = []
    for src in hosts:
        others = [h for h in hosts if h != src]
        for (dst, port), state in scan(inventory, src, others).items():
            want = expected_open(groups, src, dst, port)
            if want and state != "open":
                wrong.append("%s -> %s:%d should connect, got %s" % (src, dst, port, state))
            if not want and state == "open":
                wrong.append("%s -> %s:%d should be blocked, it connects" % (src, dst, port))
    assert not wrong, "\n".join(wrong)


def test_blocked_ports_are_dropped_not_just_closed(inventory, cluster):
    """A port with a listener that the matrix does not allow: the firewall, not a missing service, stops it."""
    hosts, groups = cluster
    db = groups["postgres_primary"][0]
    lb = groups["haproxy"][0]
    # PostgreSQL listens on the private address, and the load balancer is no database client.
    assert scan(inventory, lb, [db])[(db, 5432)] == "dropped"


def test_etcd_is_dropped_from_hosts_that_are_no_etcd_client(inventory, cluster):
    """etcd listens on the private address with no authentication: only the firewall keeps other hosts out."""
    hosts, groups = cluster
    allowed = set(groups["etcd"]) | set(groups["postgres"])
    outsiders = [h for h in hosts if h not in allowed]
    assert outsiders and groups["etcd"], (outsiders, groups["etcd"])
    member = groups["etcd"][0]
    states = scan(inventory, outsiders[0], [member])
    assert states[(member, 2379)] == "dropped" and states[(member, 2380)] == "dropped", states


def test_a_ruleset_that_locks_the_controller_out_is_rolled_back(inventory, cluster):
    hosts, groups = cluster
    target = groups["redis"][-1]
    before = _rules(ssh(target, "sudo nft list table inet nextcloud_ha").stdout)
    # Moving ssh to a port nothing listens on and dropping the trusted network cuts the controller off.
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    res = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(STATE, "inventory"),
         os.path.join(ROOT, "playbooks", "firewall.yml"), "--limit", target,
         "-e", '{"firewall_ssh_port": 2222, "firewall_trusted_networks": [], "firewall_rollback_seconds": 20}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "was rolled back" in out, out[-3000:]
    after = ssh(target, "sudo nft list table inet nextcloud_ha")
    assert after.returncode == 0
    assert _rules(after.stdout) == before
    # A new ssh connection gets in, and the file loaded at boot is the rolled back one too.
    boot_file = "/etc/nextcloud-ha/firewall/firewall.nft"
    boot = ssh(target, "sudo sh -c 'nft -c -f %s && cat %s'" % (boot_file, boot_file))
    assert boot.returncode == 0, boot.stderr
    assert "dport 2222" not in boot.stdout and "trusted network" in boot.stdout
