"""The lab itself: every host is a real, reachable Debian machine with ssh, sudo, systemd and apt."""
import itertools

from conftest import ssh

REQUIRED_GROUPS = ["haproxy", "webservers", "redis", "postgres_primary", "postgres_standby"]


def test_inventory_has_the_cluster_groups(inventory):
    for group in REQUIRED_GROUPS:
        assert inventory.group(group), "group %s is empty" % group
    assert len(inventory.group("postgres_primary")) == 1


def test_ssh_answers_as_the_inventory_host(inventory):
    for host in inventory.hosts:
        res = ssh(host, "hostname; id -un")
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == [host, "ansible"]


def test_become_gives_root_without_a_password(inventory):
    for host in inventory.hosts:
        res = ssh(host, "sudo -n id -u")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "0"


def test_systemd_is_pid_1_and_running(inventory, lab_host):
    for name in inventory.hosts:
        host = lab_host(name)
        assert host.check_output("readlink /proc/1/exe") == "/usr/lib/systemd/systemd"
        state = host.run("systemctl is-system-running").stdout.strip()
        failed = host.check_output("systemctl --failed --no-legend --plain")
        assert state == "running", "%s is %s; failed units: %s" % (name, state, failed)
        assert host.service("ssh").is_running


def test_apt_resolves_and_fetches_packages(inventory, lab_host):
    for name in inventory.hosts:
        host = lab_host(name)
        host.run_test("apt-get -qq update")
        res = host.run("apt-get -s -y install tree")
        assert res.rc == 0 and "Inst tree" in res.stdout, res.stderr


def test_hosts_reach_each_other_by_inventory_name(inventory, lab_host):
    for src, dst in itertools.permutations(inventory.hosts, 2):
        host = lab_host(src)
        resolved = host.check_output("getent ahostsv4 %s | awk 'NR==1 {print $1}'" % dst)
        assert resolved == inventory.address(dst), "%s resolves %s to %r" % (src, dst, resolved)
        host.run_test("nc -z -w 3 %s 22" % dst)


def test_mirror_serves_the_standin_release_to_the_cluster(inventory, lab_host):
    """The lab's mirror publishes a release like download.nextcloud.com: archive, .sha256, .asc, key."""
    web = lab_host(inventory.group("webservers")[0])
    base = "http://mirror/nextcloud-32.0.2.tar.bz2"
    published = web.check_output("curl -sf %s.sha256" % base).split()
    assert published[1] == "nextcloud-32.0.2.tar.bz2"
    actual = web.check_output("curl -sf %s | sha256sum" % base).split()[0]
    assert actual == published[0]
    assert web.check_output("curl -sf %s.asc" % base).startswith("-----BEGIN PGP SIGNATURE-----")
    assert web.run("curl -sf http://mirror/corrupt-checksum/nextcloud-32.0.2.tar.bz2.sha256").stdout.split()[0] != actual
