"""Redis and Sentinel as deployed by playbooks/redis.yml: real state on the lab's servers.

Needs the lab up and playbooks/redis.yml and playbooks/local_proxy.yml applied (two Redis hosts: replication, three
Sentinels, the local proxy's `redis` listener on every web node).
"""
import uuid

import pytest

from ha_helpers import (GROUPS, HOSTS, PROXY_SOCKET, REDIS_PASSWORD, current_master, playbook, recap_changed,
                        redis_cli, redis_role, run_ssh, sentinel_cli, servers_state)

REDIS = GROUPS.get("redis", [])
WEB = GROUPS.get("webservers", [])
HA = len(REDIS) > 1
SENTINELS = REDIS + ([GROUPS["redis_sentinel"][0]] if GROUPS.get("redis_sentinel") else GROUPS.get("haproxy", [])[:1])


@pytest.mark.parametrize("host", REDIS)
def test_redis_listens_on_private_address_and_loopback_only(lab_host, host):
    listening = lab_host(host).check_output("ss -Htlnp 'sport = :6379'")
    addresses = sorted(line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines())
    assert addresses == sorted([HOSTS[host], "127.0.0.1"])


@pytest.mark.parametrize("host", REDIS)
def test_redis_settings(host):
    res = redis_cli(host, "config get protected-mode maxmemory-policy maxmemory aclfile", admin=True)
    assert res.returncode == 0, res.stderr
    values = dict(zip(res.stdout.split()[::2], res.stdout.split()[1::2]))
    assert values["protected-mode"] == "yes"
    assert values["maxmemory-policy"] == "noeviction"
    assert int(values["maxmemory"]) == 256 * 1024 * 1024
    assert values["aclfile"] == "/etc/redis/users.acl"


@pytest.mark.parametrize("host", REDIS)
def test_redis_refuses_unauthenticated_clients(host):
    """From a web node, over the network, without and with a wrong password."""
    web = WEB[0]
    anonymous = run_ssh(web, "redis-cli -h %s -p 6379 set nc-ha-test x" % HOSTS[host])
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    wrong = run_ssh(web, "REDISCLI_AUTH=wrong-password redis-cli --no-auth-warning --user nextcloud -h %s ping"
                    % HOSTS[host])
    assert "WRONGPASS" in wrong.stdout + wrong.stderr


@pytest.mark.parametrize("command", ["flushall", "flushdb", "config get maxmemory", "save", "shutdown",
                                     "replicaof no one", "acl list", "monitor"])
def test_nextcloud_user_cannot_run_dangerous_commands(command):
    res = redis_cli(REDIS[0], command)
    assert "NOPERM" in res.stdout + res.stderr, res.stdout


def test_nextcloud_user_can_cache_and_lock():
    key = "nc-ha-test/lock/%s" % uuid.uuid4().hex
    master = current_master(REDIS)[0]
    assert redis_cli(master, "set %s exclusive NX EX 60" % key).stdout.strip() == "OK"
    assert redis_cli(master, "get %s" % key).stdout.strip() == "exclusive"
    assert redis_cli(master, "del %s" % key).stdout.strip() == "1"


@pytest.mark.skipif(not HA, reason="a single Redis host has no replication")
def test_one_master_and_replicas_in_sync():
    masters = current_master(REDIS)
    assert len(masters) == 1, "masters: %s" % masters
    for host in REDIS:
        if host == masters[0]:
            continue
        info = redis_cli(host, "info replication", admin=True).stdout
        assert "role:slave" in info
        assert "master_host:%s" % HOSTS[masters[0]] in info
        assert "master_link_status:up" in info
    key = "nc-ha-test/replicated/%s" % uuid.uuid4().hex
    assert redis_cli(masters[0], "set %s v EX 60" % key).stdout.strip() == "OK"
    assert redis_cli(masters[0], "wait %d 2000" % (len(REDIS) - 1), admin=True).stdout.strip() == str(len(REDIS) - 1)
    for host in REDIS:
        assert redis_cli(host, "get %s" % key).stdout.strip() == "v"


@pytest.mark.skipif(not HA, reason="Sentinel runs only with two or more Redis hosts")
@pytest.mark.parametrize("host", SENTINELS)
def test_sentinels_agree_on_the_master(host):
    master = current_master(REDIS)[0]
    res = sentinel_cli(host, "sentinel get-master-addr-by-name nextcloud")
    assert res.stdout.split() == [HOSTS[master], "6379"]
    info = sentinel_cli(host, "sentinel master nextcloud").stdout.split()
    values = dict(zip(info[::2], info[1::2]))
    assert values["flags"] == "master"
    assert int(values["num-other-sentinels"]) == len(SENTINELS) - 1
    assert int(values["num-slaves"]) == len(REDIS) - 1
    assert int(values["quorum"]) == len(SENTINELS) // 2 + 1


@pytest.mark.skipif(not HA, reason="Sentinel runs only with two or more Redis hosts")
def test_sentinel_refuses_unauthenticated_clients():
    # From another Sentinel: the firewall lets only Sentinels reach a Sentinel's port.
    res = run_ssh(SENTINELS[1], "redis-cli -h %s -p 26379 sentinel masters" % HOSTS[SENTINELS[0]])
    assert "NOAUTH" in res.stdout + res.stderr


@pytest.mark.skipif(not HA, reason="the local proxy exists only with two or more Redis hosts")
@pytest.mark.parametrize("web", WEB)
def test_local_proxy_reaches_the_master_only(web):
    master = current_master(REDIS)[0]
    states = servers_state(web, backend="redis", socket=PROXY_SOCKET)
    assert set(states) == set(REDIS)
    up = [name for name, (op, _admin) in states.items() if op == 2]
    assert up == [master]
    # A write through the proxy lands on the master (and is replicated).
    key = "nc-ha-test/proxy/%s/%s" % (web, uuid.uuid4().hex)
    res = run_ssh(web, "REDISCLI_AUTH=%s redis-cli --no-auth-warning --user nextcloud -h 127.0.0.1 -p 6379 "
                       "set %s %s EX 60" % (REDIS_PASSWORD, key, web))
    assert res.stdout.strip() == "OK", res.stdout + res.stderr
    assert redis_cli(master, "get %s" % key).stdout.strip() == web


@pytest.mark.skipif(not HA, reason="the local proxy exists only with two or more Redis hosts")
@pytest.mark.parametrize("web", WEB)
def test_local_proxy_listens_on_loopback_only(lab_host, web):
    listening = lab_host(web).check_output("ss -Htlnp 'sport = :6379'")
    addresses = [line.split()[3] for line in listening.splitlines()]
    assert addresses == ["127.0.0.1:6379"]


def test_second_run_changes_nothing_and_keeps_the_master():
    before = current_master(REDIS)
    res = playbook("redis.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    changed = recap_changed(res.stdout)
    assert changed and all(v == 0 for v in changed.values()), changed
    assert current_master(REDIS) == before
    assert all(redis_role(h) in ("master", "slave") for h in REDIS)
