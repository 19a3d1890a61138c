"""The etcd cluster Patroni elects its leader with (issue #21): real state of the lab's etcd members.

Every member lists the same members, exactly the hosts of the `etcd` group with their private addresses, and every
member answers healthy; a key written through one member is read through another; the client port is dropped from
a cluster host that is no etcd client (the firewall is the only access control without TLS), and connects from
one that is (Patroni on a PostgreSQL host). With etcd_tls, every client needs a certificate. A second run of playbooks/etcd.yml changes nothing and keeps the data.
"""
import json
import uuid

import pytest

from ha_helpers import GROUPS, HOSTS, playbook, recap_changed, sudo

ETCDCTL = "ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=5s "
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


_CONFIG = {}


def config(host):
    """The ETCD_* settings the role wrote into the member's /etc/default/etcd."""
    if host not in _CONFIG:
        text = sudo(host, "cat /etc/default/etcd").stdout
        _CONFIG[host] = {k: v.strip('"') for k, v in (line.split("=", 1) for line in text.splitlines()
                                                       if "=" in line and not line.startswith("#"))}
    return _CONFIG[host]


def tls(host):
    return "ETCD_CERT_FILE" in config(host)


def scheme(host):
    return "https" if tls(host) else "http"


def etcdctl(host, args, check=True, cert=True):
    """etcdctl on the member against its loopback listener (with its CA and, unless cert=False, its certificate)."""
    conf = config(host)
    options = "--endpoints=%s://127.0.0.1:2379 " % scheme(host)
    if tls(host):
        options += "--cacert=%s " % conf["ETCD_TRUSTED_CA_FILE"]
        if cert:
            options += "--cert=%s --key=%s " % (conf["ETCD_CERT_FILE"], conf["ETCD_KEY_FILE"])
    return sudo(host, ETCDCTL + options + args, check=check)


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
            assert m["peerURLs"] == ["%s://%s:2380" % (scheme(host), address)], (host, m)
            assert m["clientURLs"] == ["%s://%s:2379" % (scheme(host), address)], (host, m)
        seen[host] = sorted((m["name"], m["ID"]) for m in listed)
    # The same member IDs everywhere: one cluster, not several clusters of one.
    assert len({tuple(v) for v in seen.values()}) == 1, seen


def test_every_member_answers_healthy(members):
    for host in members:
        res = etcdctl(host, "endpoint health --cluster --write-out=json")
        health = json.loads(res.stdout)
        want = sorted("%s://%s:2379" % (scheme(host), HOSTS[m]) for m in members)
        assert sorted(h["endpoint"] for h in health) == want, health
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
        res = playbook("etcd.yml", extra=["-e", "etcd_tls=%s" % tls(members[0])], timeout=900)
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


def test_with_tls_every_client_needs_a_certificate(members):
    """etcd_tls: the members speak https only, and refuse a client without a certificate signed by the CA."""
    if not tls(members[0]):
        pytest.skip("the lab's etcd runs without TLS (etcd_tls: false)")
    for host in members:
        urls = ",".join(config(host)[key] for key in ("ETCD_LISTEN_PEER_URLS", "ETCD_LISTEN_CLIENT_URLS",
                                                      "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_INITIAL_CLUSTER"))
        assert "https://" in urls and "http://" not in urls, (host, urls)
        assert config(host)["ETCD_CLIENT_CERT_AUTH"] == config(host)["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
        assert etcdctl(host, "endpoint health", check=True).returncode == 0
        without = etcdctl(host, "put /nextcloud-ha-test/nocert x", check=False, cert=False)
        assert without.returncode != 0, (host, without.stdout)
        plain = sudo(host, ETCDCTL + "--endpoints=http://127.0.0.1:2379 put /nextcloud-ha-test/plain x", check=False)
        assert plain.returncode != 0, (host, plain.stdout)
        key = sudo(host, "stat -c '%%a %%G' %s" % config(host)["ETCD_KEY_FILE"]).stdout.split()
        assert key == ["640", "etcd"], (host, key)


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
