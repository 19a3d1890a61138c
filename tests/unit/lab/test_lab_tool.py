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
    for group in ("haproxy", "webservers", "redis", "postgres_primary", "postgres_standby", "etcd"):
        assert inv["children"][group]["hosts"], group
    with open(lab.known_hosts) as f:
        known = f.read().splitlines()
    assert "web1,%s ssh-ed25519 AAAAkeyweb1" % lab.address("web1") in known
    with open(lab.ssh_config) as f:
        config = f.read()
    assert "StrictHostKeyChecking yes" in config and "HostName %s" % lab.address("db2") in config
    assert os.path.islink(os.path.join(lab.inventory_dir, "group_vars"))


def test_missing_prerequisites_name_the_package_once():
    # iptables: netavark 1.4 (Debian 12) fails every `podman run` on a network without it
    gone = {"/usr/sbin/iptables", "/usr/bin/ssh", "/usr/bin/ssh-keygen"}
    assert labtool.Lab.missing_prerequisites(exists=lambda p: p not in gone) == ["iptables", "openssh-client"]
    assert labtool.Lab.missing_prerequisites(exists=lambda p: True) == []
    installed = set(labtool.HOST_PACKAGES)
    assert {prereq[1] for prereq in labtool.HOST_PREREQUISITES} <= installed, "every checked package is installed by up"


def test_deploy_blank_and_ssh_hand_their_arguments_on(monkeypatch):
    seen = []

    class FakeLab:
        ssh_config = "/x/ssh_config"

        def deploy(self, extra):
            seen.append(("deploy", extra))
            return 0

        def blank(self, cmd):
            seen.append(("blank", cmd))
            return 3

    monkeypatch.setattr(labtool, "Lab", FakeLab)
    monkeypatch.setattr(labtool.os, "execvp", lambda prog, argv: seen.append(("exec", argv)))
    assert labtool.main(["deploy", "--check", "-e", "nextcloud_version=33.0.0", "--tags", "web"]) == 0
    assert labtool.main(["blank"]) == 3
    labtool.main(["blank", "make", "unit"])
    labtool.main(["ssh", "web1", "sudo", "-n", "true"])
    assert seen == [
        ("deploy", ["--check", "-e", "nextcloud_version=33.0.0", "--tags", "web"]),
        ("blank", ["make", "deps", "venv", "unit", "playbook", "standin", "lint", "sanity"]),
        ("blank", ["make", "unit"]),
        ("exec", ["ssh", "-F", "/x/ssh_config", "web1", "sudo", "-n", "true"]),
    ]


def _gpg(home, *args):
    import subprocess
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", ""] + list(args), check=True, capture_output=True, text=True).stdout


def test_a_release_archive_on_the_controller_is_deployed_through_the_air_gapped_path(tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    _gpg(home, "--quick-gen-key", "release-test@example.invalid", "ed25519", "sign", "1d")
    fingerprint = [line.split(":")[9] for line in _gpg(home, "--with-colons", "--list-keys").splitlines()
                   if line.startswith("fpr:")][0]
    rel = tmp_path / "rel"
    rel.mkdir()
    archive = rel / "nextcloud-32.0.2.tar.bz2"
    archive.write_bytes(b"not really bz2")
    (rel / "nextcloud-32.0.2.tar.bz2.sha256").write_text("00  nextcloud-32.0.2.tar.bz2\n")
    (rel / "nextcloud-32.0.2.tar.bz2.asc").write_text("sig\n")
    (rel / "nextcloud.asc").write_text(_gpg(home, "--armor", "--export"))
    got = labtool.Lab.release_archive_vars(str(archive), environ={})
    assert got == {
        "nextcloud_version": "32.0.2",
        "nextcloud_archive_url": str(archive),
        "nextcloud_checksum_url": str(archive) + ".sha256",
        "nextcloud_signature_url": str(archive) + ".asc",
        "nextcloud_gpg_key_url": str(rel / "nextcloud.asc"),
        "nextcloud_gpg_fingerprint": fingerprint,
    }
    # other names, given by variables
    renamed = rel / "latest.tar.bz2"
    archive.rename(renamed)
    with pytest.raises(SystemExit, match="cannot tell the version"):
        labtool.Lab.release_archive_vars(str(renamed), environ={
            "LAB_NEXTCLOUD_SHA256": str(archive) + ".sha256", "LAB_NEXTCLOUD_ASC": str(archive) + ".asc"})
    got = labtool.Lab.release_archive_vars(str(renamed), environ={
        "LAB_NEXTCLOUD_SHA256": str(archive) + ".sha256", "LAB_NEXTCLOUD_ASC": str(archive) + ".asc",
        "LAB_NEXTCLOUD_VERSION": "33.0.3", "LAB_NEXTCLOUD_FINGERPRINT": "ABCD"})
    assert (got["nextcloud_version"], got["nextcloud_gpg_fingerprint"]) == ("33.0.3", "ABCD")
    with pytest.raises(SystemExit, match=r"missing: checksum \(LAB_NEXTCLOUD_SHA256\) .*latest.tar.bz2.sha256; "
                                         r"signature \(LAB_NEXTCLOUD_ASC\)"):
        labtool.Lab.release_archive_vars(str(renamed), environ={})


def test_the_access_text_names_the_entrance_the_admin_and_the_app_password_command(lab):
    text = lab.access_text()
    # Two load balancers float an address in the lab's subnet (topology.yml's vip): clients reach the cloud there.
    entrance = lab.prefix + ".100"
    assert lab.vip() == entrance and lab.entrance() == entrance
    assert "curl -k --resolve cloud.lab.test:443:%s https://cloud.lab.test/status.php" % entrance in text
    assert "nextcloud_ha_admin_password in lab/inventory/group_vars/all/lab.yml" in text
    assert "occ user:auth-tokens:add --password-from-env admin" in text
    assert "LAB_NAME=unitlab .venv/bin/python -m lab ssh web1" in text
