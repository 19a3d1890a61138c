"""The cluster facts on the lab (issue #23, roles/cluster_facts): one master, one address per host, decided once.

The preflight refuses a bad inventory before any host changes, the summary names the master the inventory chose,
and a play goes on while a host it only needs the address of is down. Nothing here changes the cluster (the refused
runs stop in the preflight, the summary only reads, the sync finds nothing to do).
"""

import re

import pytest

from ha_helpers import GROUPS, HOSTS, VIP, container, playbook, recap_changed, vip_holders, wait_ssh


def _flat(output):
    return " ".join(output.split())


def test_every_host_gets_the_address_of_its_default_route():
    """The lab sets no nextcloud_ha_private_address: every host's address is the one of its default route, which
    is the address lab/lab.py gave the container (also its ansible_host)."""
    res = playbook("preflight.yml", ["-v"], timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]
    # -v prints the set_fact result (callback_result_format yaml): "cluster_facts_addresses:" then "host: address".
    block = res.stdout.split("cluster_facts_addresses:", 1)[1].split("cluster_facts_redis_host", 1)[0]
    found = dict(re.findall(r"^\s+([\w.-]+): (\d+\.\d+\.\d+\.\d+)$", block, re.M))
    cluster = sorted(set(h for group in ("haproxy", "webservers", "redis", "postgres", "etcd", "monitoring")
                         for h in GROUPS.get(group, [])))
    assert sorted(found) == cluster
    assert all(found[host] == HOSTS[host] for host in cluster), found


def test_two_hosts_with_one_address_are_refused_before_any_change():
    res = playbook("site.yml", ["-e", "nextcloud_ha_private_address=10.255.255.1"], timeout=600)
    out = _flat(res.stdout)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "These hosts share an address:" in out and "Nothing was changed." in out, res.stdout[-3000:]
    assert set(recap_changed(res.stdout).values()) == {0}, res.stdout[-3000:]
    assert "PLAY [Deploy" not in res.stdout


def test_a_master_outside_the_web_nodes_is_refused_before_any_host_is_contacted():
    outsider = GROUPS["redis"][0]
    res = playbook("site.yml", ["-e", "nextcloud_ha_master=%s" % outsider], timeout=300)
    out = _flat(res.stdout)
    assert res.returncode != 0, res.stdout[-3000:]
    assert "The codebase master '%s' (nextcloud_ha_master) is not in the webservers group." % outsider in out, out[-3000:]
    # Refused in the controller's play: no cluster host appears in the recap.
    assert set(recap_changed(res.stdout)) == {"localhost"}, res.stdout[-3000:]


def test_the_summary_names_the_master_the_inventory_chose():
    """nextcloud_ha_master moves the master (before, roles and playbooks took the first web node regardless)."""
    webs = GROUPS["webservers"]
    for master in (webs[0], webs[-1]):
        res = playbook("summary.yml", ["-e", "nextcloud_ha_master=%s" % master], timeout=600)
        assert res.returncode == 0, res.stdout[-3000:]
        marked = re.findall(r"\b(\w+) \(master\)", res.stdout)
        assert marked == [master], (marked, res.stdout[-3000:])


@pytest.mark.disruptive
def test_a_host_that_cannot_be_reached_does_not_stop_a_play():
    """The sync play (web nodes) gathers the addresses of the other cluster hosts one at a time: a load balancer that
    is down (the one without the floating address, so no request is lost) is noted and left out, the play goes on."""
    idle = [lb for lb in GROUPS.get("haproxy", []) if lb not in vip_holders()] if VIP else []
    if not idle:
        pytest.skip("one load balancer: none can be stopped without stopping the entrance")
    down = idle[-1]
    container("stop", down)
    try:
        res = playbook("sync.yml", timeout=900)
    finally:
        container("start", down)
        wait_ssh(down)
    assert res.returncode == 0, res.stdout[-3000:]
    noted = res.stdout.split("Note a host that cannot be reached, %s] ***" % down, 1)[1].lstrip().splitlines()[0]
    assert noted.startswith("ok: "), noted
    assert set(recap_changed(res.stdout).values()) == {0}, res.stdout[-3000:]
