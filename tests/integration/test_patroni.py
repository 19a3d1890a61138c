"""Bad input for PostgreSQL on Patroni with etcd (issue #21): site.yml refuses it with a clear preflight error and
changes nothing.

Each case runs site.yml, the entry point a user runs, against a copy of the lab's inventory (or with an extra
variable) that is wrong in one way: an even-sized etcd group, no etcd group, no REST API password, no replication
password, a postgres group of one host with synchronous mode. Proof that nothing changed: the run fails naming
the variable or group, no host reports a change, and on every host the files the run would rewrite (Patroni's and
etcd's configuration, the firewall's ruleset, PgBouncer's configuration), the services' start times and Patroni's
dynamic configuration in etcd are what they were before.
"""
import pytest

from pg_helpers import (ADDRESSES, ETCD, GROUPS, POSTGRES, dynamic_config, failure_messages, files_and_services,
                        inventory_edited, playbook, recap)

FILES = ["/etc/patroni/config.yml", "/etc/default/etcd", "/etc/nextcloud-ha/firewall/firewall.nft",
         "/etc/pgbouncer/pgbouncer.ini", "/etc/nextcloud-ha/wal-targets"]
SERVICES = ["patroni", "etcd", "pgbouncer", "nextcloud-ha-firewall"]


def fingerprint(host):
    """sha256 and mtime of the files the run would rewrite, the services' start times and the nft ruleset's hash."""
    return files_and_services(host, FILES, SERVICES, 'echo "nft $(nft list ruleset | sha256sum | cut -c1-64)"')


def fingerprints():
    return {host: fingerprint(host) for host in sorted(set(POSTGRES + ETCD + GROUPS.get("webservers", [])))}


@pytest.fixture(scope="module", autouse=True)
def lab_has_patroni():
    if len(POSTGRES) < 2 or len(ETCD) < 3:
        pytest.skip("the lab has no Patroni pair and three etcd members")
    dynamic_config()  # the cluster answers


def other_hosts(excluded):
    return [h for h in ADDRESSES if h not in excluded and h in GROUPS.get("redis", []) + GROUPS.get("haproxy", [])]


CASES = {
    "even etcd group": dict(groups=lambda: {"etcd": ETCD + other_hosts(ETCD)[:1]},
                            expect=["etcd", "odd number"]),
    "no etcd group": dict(drop=["etcd"], expect=["etcd", "odd number"]),
    "no REST API password": dict(extra=["-e", "nextcloud_ha_patroni_rest_password="],
                                 expect=["nextcloud_ha_patroni_rest_password"]),
    "no replication password": dict(extra=["-e", "nextcloud_ha_replication_password="],
                                    expect=["nextcloud_ha_replication_password"]),
    "one postgres host in synchronous mode": dict(
        groups=lambda: {"postgres_primary": POSTGRES[:1], "postgres_standby": []},
        extra=["-e", "patroni_synchronous_mode=true"], expect=["patroni_synchronous_mode"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_anything_changes(case):
    spec = CASES[case]
    groups = spec["groups"]() if "groups" in spec else None
    if groups and "etcd" in groups and len(groups["etcd"]) % 2:
        pytest.skip("no host outside the etcd group to make it even")
    inventory = inventory_edited(groups=groups, drop=spec.get("drop", ())) if groups or spec.get("drop") else None
    before, config = fingerprints(), dynamic_config()
    res = playbook("site.yml", *spec.get("extra", []), inventory=inventory, timeout=900)
    output = res.stdout + res.stderr
    assert res.returncode != 0, "%s: site.yml did not refuse it:\n%s" % (case, output[-3000:])
    messages = [m for m in failure_messages(output) if all(word in m for word in spec["expect"])]
    assert messages, "%s: no failure names %s:\n%s" % (case, spec["expect"], output[-3000:])
    assert any("Nothing was changed" in m for m in messages), messages
    changed = {h: c["changed"] for h, c in recap(output).items() if c.get("changed")}
    assert not changed, "%s: hosts changed before the refusal: %s\n%s" % (case, changed, output[-3000:])
    after = fingerprints()
    assert after == before, "%s: %s" % (case, {h: (before[h], after[h]) for h in before if before[h] != after[h]})
    assert dynamic_config() == config
