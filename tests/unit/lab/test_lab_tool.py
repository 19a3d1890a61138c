"""The lab tool's pure parts: image tags, addresses, and the inventory and ssh files it writes."""
import os
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from lab import lab as labtool  # noqa: E402


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_SUBNET", raising=False)
    monkeypatch.delenv("LAB_DISTRO", raising=False)
    instance = labtool.Lab(name="unitlab")
    instance.state = str(tmp_path / "state")
    os.makedirs(instance.state)
    return instance


def test_image_tag_follows_the_recipe(monkeypatch):
    before = labtool.Lab.recipe_hash("bookworm")
    assert before != labtool.Lab.recipe_hash("trixie")
    monkeypatch.setattr(labtool, "BASE_PACKAGES", labtool.BASE_PACKAGES + ["vim-tiny"])
    assert labtool.Lab.recipe_hash("bookworm") != before


def test_every_host_gets_its_own_address_in_the_lab_subnet(lab):
    addresses = [lab.address(h) for h in lab.hosts]
    assert len(set(addresses)) == len(addresses)
    prefix = lab.subnet.rsplit(".", 1)[0] + "."
    assert all(a.startswith(prefix) for a in addresses)


def test_web_roots_are_volumes_named_after_the_lab_and_host(lab):
    # the web nodes' /var/www on a podman volume of their own (hard links on a disk file system, not overlayfs)
    webservers = [h for h, spec in lab.hosts.items() if "webservers" in (spec or {}).get("groups", [])]
    assert webservers
    for host in lab.hosts:
        want = {"unitlab-%s-var-www" % host: "/var/www"} if host in webservers else {}
        assert lab.volumes(host) == want, host


def test_lab_names_keep_labs_apart(monkeypatch):
    monkeypatch.delenv("LAB_SUBNET", raising=False)
    one, two = labtool.Lab(name="alpha"), labtool.Lab(name="beta")
    assert one.container("web1") != two.container("web1")
    assert one.state != two.state


def test_unknown_distro_is_refused():
    with pytest.raises(SystemExit, match="unknown distro"):
        labtool.Lab(name="x", distro="jessie")


def test_inventory_and_ssh_config_pin_host_keys(lab):
    keys = {h: ["ssh-ed25519", "AAAAkey" + h] for h in lab.hosts}
    lab.write_access(keys, {"nextcloud_version": "32.0.2"})
    with open(lab.inventory) as f:
        inv = yaml.safe_load(f)["all"]
    assert set(inv["hosts"]) == set(lab.hosts)
    assert inv["vars"]["ansible_become"] is True
    assert "StrictHostKeyChecking=yes" in inv["vars"]["ansible_ssh_common_args"]
    assert inv["vars"]["nextcloud_version"] == "32.0.2"
    for group in ("haproxy", "webservers", "redis", "postgres_primary", "postgres_standby"):
        assert inv["children"][group]["hosts"], group
    with open(lab.known_hosts) as f:
        known = f.read().splitlines()
    assert "web1,%s ssh-ed25519 AAAAkeyweb1" % lab.address("web1") in known
    with open(lab.ssh_config) as f:
        config = f.read()
    assert "StrictHostKeyChecking yes" in config and "HostName %s" % lab.address("db2") in config
    assert os.path.islink(os.path.join(lab.inventory_dir, "group_vars"))
