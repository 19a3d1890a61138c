"""The etcd cluster Patroni elects its leader with (issue #21): real state of the lab's etcd members.

Every member lists the same members, exactly the hosts of the `etcd` group with their private addresses, and every
member answers healthy; a key written through one member is read through another; the client port is dropped from
a cluster host that is no etcd client (the firewall is the only access control without TLS), and connects from
one that is (Patroni on a PostgreSQL host). A second run of playbooks/etcd.yml changes nothing and keeps the data.
"""
import json
import uuid

import pytest

from ha_helpers import GROUPS, HOSTS, playbook, recap_changed, sudo

ETCDCTL = "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 --dial-timeout=3s --command-timeout=5s "
PROBE = ("python3 -c 'import socket, sys\n"
         "s = socket.socket(); s.settimeout(3)\n"
         "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print(\"open\")\n"
         "except ConnectionRefusedError:\n    print(\"refused\")\n"
         "except OSError:\n    print(\"dropped\")\n' %s %d")


@pytest.fixture(scope="module")
def members():
    etcd = GROUPS.get("etcd", [])
    if not etcd:
        pytest.fail("the lab inventory has no etcd group (lab/topology.yml)")
    return sorted(etcd)


def etcdctl(host, args):
    return sudo(host, ETCDCTL + args)


def member_list(host):
    return json.loads(etcdctl(host, "member list --write-out=json").stdout)["members"]


def test_every_member_lists_exactly_the_etcd_group(members):
    seen = {}
    for host in members:
        listed = member_list(host)
        names = sorted(m.get("name", "") for m in listed)
        assert names == members, (host, names)
        for m in listed:
            address = HOSTS[m["name"]]
            assert m["peerURLs"] == ["http://%s:2380" % address], (host, m)
            assert m["clientURLs"] == ["http://%s:2379" % address], (host, m)
        seen[host] = sorted((m["name"], m["ID"]) for m in listed)
    # The same member IDs everywhere: one cluster, not several clusters of one.
    assert len({tuple(v) for v in seen.values()}) == 1, seen


def test_every_member_answers_healthy(members):
    for host in members:
        res = etcdctl(host, "endpoint health --cluster --write-out=json")
        health = json.loads(res.stdout)
        assert sorted(h["endpoint"] for h in health) == sorted("http://%s:2379" % HOSTS[m] for m in members), health
        assert all(h["health"] for h in health), health


def test_one_leader_and_one_raft_term(members):
    status = json.loads(etcdctl(members[0], "endpoint status --cluster --write-out=json").stdout)
    assert len(status) == len(members), status
    leaders = {s["Status"]["leader"] for s in status}
    terms = {s["Status"]["raftTerm"] for s in status}
    assert len(leaders) == 1 and len(terms) == 1, status
    assert leaders <= {s["Status"]["header"]["member_id"] for s in status}, status


def test_a_key_written_through_one_member_is_read_through_another(members):
    key = "/nextcloud-ha-test/%s" % uuid.uuid4().hex
    value = uuid.uuid4().hex
    writer, reader = members[0], members[-1]
    assert writer != reader
    try:
        assert etcdctl(writer, "put %s %s" % (key, value)).stdout.strip() == "OK"
        got = etcdctl(reader, "get --print-value-only %s" % key).stdout.strip()
        assert got == value
    finally:
        etcdctl(writer, "del %s" % key)
    assert etcdctl(reader, "get --print-value-only %s" % key).stdout.strip() == ""


def test_a_second_run_changes_nothing_and_keeps_the_data(members):
    """A configured member is never wiped: a key and the member IDs survive a re-run, which changes nothing."""
    key, value = "/nextcloud-ha-test/rerun-%s" % uuid.uuid4().hex, uuid.uuid4().hex
    before = sorted((m["name"], m["ID"]) for m in member_list(members[0]))
    assert etcdctl(members[0], "put %s %s" % (key, value)).stdout.strip() == "OK"
    try:
        res = playbook("etcd.yml", timeout=600)
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
        changed = recap_changed(res.stdout)
        assert sorted(changed) == members and not any(changed.values()), changed
        for host in members:
            assert etcdctl(host, "get --print-value-only %s" % key).stdout.strip() == value, host
        assert sorted((m["name"], m["ID"]) for m in member_list(members[-1])) == before
    finally:
        etcdctl(members[0], "del %s" % key)


def test_members_run_from_the_role_data_dir_and_the_package_cluster_is_gone(members):
    for host in members:
        res = sudo(host, "systemctl is-enabled etcd; systemctl is-active etcd; "
                         "test -d /var/lib/etcd/nextcloud-ha/member && echo data; "
                         "test -e /var/lib/etcd/default && echo leftover || true")
        assert res.stdout.split() == ["enabled", "active", "data"], (host, res.stdout)


def test_client_port_only_from_etcd_clients(members):
    """Patroni's hosts connect; a load balancer (no etcd client) is dropped by the firewall."""
    postgres = GROUPS.get("postgres_primary", []) + GROUPS.get("postgres_standby", [])
    outsiders = [h for h in GROUPS.get("haproxy", []) if h not in members and h not in postgres]
    assert outsiders and postgres, (outsiders, postgres)
    member = next((m for m in members if m not in postgres), members[0])
    client = next(p for p in postgres if p != member)
    assert sudo(client, PROBE % (HOSTS[member], 2379)).stdout.strip() == "open"
    for port in (2379, 2380):
        state = sudo(outsiders[0], PROBE % (HOSTS[member], port)).stdout.strip()
        assert state in ("dropped", "refused"), (outsiders[0], member, port, state)
