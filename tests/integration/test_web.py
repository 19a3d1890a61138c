"""The web tier (issue #5): Apache + PHP-FPM on every web node, Nextcloud installed once, one instance everywhere.

Checks real state on the lab's web nodes: HTTP answers of every node (status.php, the stand-in's probe.php,
trusted domains), config.php values, modes and owners, the background job timer, 2FA, and runs the web playbook
again to prove it changes nothing and prints no secret, and the download path to prove a bad release is refused
before anything is unpacked.
"""
import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import LAB_NAME, ROOT, STATE

WEBROOT = "/var/www/nextcloud"
CONFIG = WEBROOT + "/config/config.php"
PHP_DUMP = "$CONFIG = []; include $argv[1]; echo json_encode($CONFIG);"
LAB_VARS = os.path.join(ROOT, "lab", "inventory", "group_vars", "all", "lab.yml")
SECRET_KEYS = ("instanceid", "passwordsalt", "secret")


def lab_vars():
    with open(LAB_VARS) as f:
        return yaml.safe_load(f) or {}


def domain():
    return lab_vars().get("nextcloud_ha_domain", "cloud.example.org")


def http(address, path, host=None, timeout=20):
    """GET http://address/path with an optional Host header; returns (status, body)."""
    req = urllib.request.Request("http://%s%s" % (address, path), headers={"Host": host or address})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def node_config(lab_host, name, path=CONFIG):
    out = lab_host(name).check_output("sudo -u www-data php -r %s %s" % (_quote(PHP_DUMP), path))
    return json.loads(out)


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def playbook(path, *args, timeout=900):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(STATE, "inventory"), path,
           *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def web_nodes(inventory):
    nodes = inventory.group("webservers")
    assert len(nodes) >= 2, "the lab needs two web nodes"
    return nodes


def test_status_php_on_every_node(inventory, web_nodes):
    for node in web_nodes:
        code, body = http(inventory.address(node), "/status.php")
        assert code == 200, (node, code, body)
        status = json.loads(body)
        assert status["installed"] is True, (node, status)
        assert status["maintenance"] is False, (node, status)
        assert status["needsDbUpgrade"] is False, (node, status)


def test_probe_is_green_on_every_node(inventory, web_nodes):
    for node in web_nodes:
        code, body = http(inventory.address(node), "/probe.php")
        probe = json.loads(body)
        assert code == 200, (node, code, probe)
        assert probe["hostname"] == node
        for check in ("db", "redis", "apcu", "datadir"):
            assert probe[check]["ok"] is True, (node, check, probe[check])


def test_probe_writes_on_one_node_read_on_the_other(inventory, web_nodes):
    """One instance: a row written through web1's PgBouncer is read through web2's."""
    key = "web-test-%d" % os.getpid()
    code, body = http(inventory.address(web_nodes[0]), "/probe.php?write=%s&checks=db" % key)
    assert code == 200, body
    code, body = http(inventory.address(web_nodes[1]), "/probe.php?read=%s&checks=db" % key)
    read = json.loads(body)["read"]
    assert read["found_row"] is True, read
    assert read["row"]["hostname"] == web_nodes[0]


def test_each_node_accepts_its_own_address_and_the_public_name(inventory, web_nodes):
    for node in web_nodes:
        address = inventory.address(node)
        code, body = http(address, "/index.php/login")
        assert code == 200, (node, code, body[:300])
        code, _ = http(address, "/index.php/login", host=domain())
        assert code == 200, (node, code)
        # the check is real: a name that is not trusted is refused
        code, _ = http(address, "/index.php/login", host="untrusted.invalid")
        assert code == 400, (node, code)


def test_a_node_does_not_trust_the_other_nodes_address(inventory, web_nodes):
    first, second = web_nodes[0], web_nodes[1]
    code, _ = http(inventory.address(first), "/index.php/login", host=inventory.address(second))
    assert code == 400


def test_secrets_are_identical_on_every_node(lab_host, web_nodes):
    configs = {node: node_config(lab_host, node) for node in web_nodes}
    for key in SECRET_KEYS:
        values = {node: cfg.get(key) for node, cfg in configs.items()}
        assert all(values.values()), (key, "missing on some node")
        assert len(set(values.values())) == 1, (key, "differs between nodes")
    # config.php is the same instance everywhere, key by key; per-node values are in node.config.php
    first = configs[web_nodes[0]]
    for node, cfg in configs.items():
        assert sorted(cfg) == sorted(first), (node, set(cfg) ^ set(first))
        for key in first:
            assert cfg[key] == first[key], (node, key)


def test_cluster_settings(inventory, lab_host, web_nodes):
    lbs = sorted(inventory.address(h) for h in inventory.group("haproxy"))
    for node in web_nodes:
        cfg = node_config(lab_host, node)
        assert cfg["trusted_domains"] == [domain()], cfg["trusted_domains"]
        local = node_config(lab_host, node, WEBROOT + "/config/node.config.php")
        assert local == {"trusted_domains": [domain(), inventory.address(node)]}, local
        assert sorted(cfg["trusted_proxies"]) == lbs
        assert cfg["overwriteprotocol"] == "https"
        assert cfg["overwrite.cli.url"] == "https://" + domain()
        assert cfg["dbhost"] == "127.0.0.1:6432"
        assert cfg["memcache.local"] == "\\OC\\Memcache\\APCu"
        assert cfg["memcache.distributed"] == "\\OC\\Memcache\\Redis"
        assert cfg["memcache.locking"] == "\\OC\\Memcache\\Redis"
        assert cfg["filelocking.enabled"] is True
        assert cfg["redis"]["timeout"] == 1.5
        assert cfg["redis"]["password"] == lab_vars()["nextcloud_ha_redis_password"]
        assert cfg["upgrade.disable-web"] is True
        assert cfg["twofactor_enforced"] == "true"


def test_data_directory_is_outside_the_web_root(lab_host, web_nodes):
    for node in web_nodes:
        host = lab_host(node)
        datadir = node_config(lab_host, node)["datadirectory"]
        real_data = host.check_output("realpath %s" % datadir)
        real_root = host.check_output("realpath %s" % WEBROOT)
        assert not (real_data + "/").startswith(real_root + "/"), (node, real_data, real_root)
        data = host.file(real_data)
        assert data.is_directory and data.user == "www-data" and data.mode == 0o770, node
        assert host.file(real_data + "/.ncdata").exists, node


def test_config_php_and_code_modes(lab_host, web_nodes):
    for node in web_nodes:
        host = lab_host(node)
        root = host.file(WEBROOT)
        assert root.is_symlink and re.match(r"^/var/www/nextcloud-\d+\.\d+\.\d+$", root.linked_to), node
        config = host.file(root.linked_to + "/config/config.php")
        assert (config.user, config.group, config.mode) == ("www-data", "www-data", 0o640), node
        index = host.file(root.linked_to + "/index.php")
        assert (index.user, index.mode) == ("www-data", 0o640), node
        assert host.file(root.linked_to + "/lib").mode == 0o750, node


def test_php_settings_for_fpm_and_cli(lab_host, web_nodes):
    for node in web_nodes:
        host = lab_host(node)
        cli = host.check_output("php -r %s" % _quote(
            "echo ini_get('memory_limit'), ' ', ini_get('apc.enable_cli'), ' ', ini_get('opcache.save_comments');"))
        assert cli.split() == ["512M", "1", "1"], (node, cli)
        conf = host.check_output("ls /etc/php/*/fpm/conf.d/90-nextcloud-ha.ini")
        assert "output_buffering = Off" in host.file(conf).content_string
        assert host.run("apache2ctl -M 2>/dev/null | grep -q mpm_event_module").rc == 0, node
        assert host.run("apache2ctl -M 2>/dev/null | grep -q php_module").rc != 0, node


def test_apache_hides_versions_and_php(inventory, web_nodes):
    req = urllib.request.Request("http://%s/status.php" % inventory.address(web_nodes[0]))
    with urllib.request.urlopen(req, timeout=20) as res:
        assert res.headers["Server"] == "Apache"
        assert "X-Powered-By" not in res.headers
        assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_background_jobs_run_from_exactly_one_timer(lab_host, web_nodes):
    active = [n for n in web_nodes if lab_host(n).run("systemctl is-active nextcloud-cron.timer").rc == 0]
    assert active == [web_nodes[0]], active
    host = lab_host(web_nodes[0])
    assert host.service("nextcloud-cron.timer").is_enabled
    assert "cron.php" in host.check_output("systemctl cat nextcloud-cron.service")
    for node in web_nodes[1:]:
        assert not lab_host(node).file("/etc/systemd/system/nextcloud-cron.timer").exists


def test_two_factor_totp_enabled_and_enforced(lab_host, web_nodes):
    host = lab_host(web_nodes[0])
    apps = json.loads(host.check_output("cd %s && sudo -u www-data php occ --no-warnings app:list --output=json"
                                        % WEBROOT).splitlines()[-1])
    assert "twofactor_totp" in apps["enabled"]
    for node in web_nodes:
        out = lab_host(node).check_output("cd %s && sudo -u www-data php occ --no-warnings twofactorauth:enforce"
                                          % WEBROOT)
        assert "is enforced for all users" in out, (node, out)


def test_occ_launcher_passes_the_command_line_unchanged(lab_host, web_nodes):
    """The install's launcher (occ arguments on stdin, not argv) gives occ exactly what `php occ ARGS` would."""
    host = lab_host(web_nodes[0])
    direct = host.run("cd %s && sudo -u www-data php occ --no-warnings config:system:get dbhost" % WEBROOT)
    payload = json.dumps({"webroot": WEBROOT, "args": ["--no-warnings", "config:system:get", "dbhost"]})
    launched = host.run("echo %s | sudo -u www-data php /usr/local/lib/nextcloud-ha/occ-stdin.php" % _quote(payload))
    assert direct.rc == launched.rc == 0, (direct.stderr, launched.stderr)
    assert launched.stdout == direct.stdout == "127.0.0.1:6432\n"
    bad = host.run("echo '{}' | sudo -u www-data php /usr/local/lib/nextcloud-ha/occ-stdin.php")
    assert bad.rc == 64, bad


@pytest.fixture(scope="module")
def second_converge():
    res = playbook("playbooks/web.yml", "-v")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return res.stdout + res.stderr


def test_second_converge_changes_nothing(second_converge, web_nodes):
    for node in web_nodes:
        recap = re.search(r"^%s\s+:\s+ok=\d+\s+changed=(\d+)" % node, second_converge, re.M)
        assert recap, node
        assert recap.group(1) == "0", [line for line in second_converge.splitlines() if line.startswith("changed")]


def test_no_secret_in_converge_output(second_converge):
    secrets = {k: v for k, v in lab_vars().items() if k.endswith("password")}
    assert secrets
    for name, value in secrets.items():
        assert str(value) not in second_converge, name


def _refused(tmp_path, name, extra):
    """Run only the download path into scratch folders; return (result, host paths)."""
    releases = "/var/tmp/nc-refusal-%s" % name
    vars_ = {"nextcloud_releases_dir": releases, "nextcloud_download_dir": releases + "-download", **extra}
    play = [{
        "name": "Download path only", "hosts": "webservers[0]", "become": True, "gather_facts": False,
        # The role's defaults read the cluster facts (the web user owning the release, ...), as in every playbook.
        "roles": [{"role": "nextcloud_ha.cluster.cluster_facts"}],
        "tasks": [{"name": "Download, verify, unpack", "ansible.builtin.include_role": {
            "name": "nextcloud_ha.cluster.nextcloud", "tasks_from": "download"}, "vars": vars_}],
    }]
    path = tmp_path / ("refuse-%s.yml" % name)
    path.write_text(yaml.safe_dump(play))
    return playbook(str(path), timeout=600), releases


@pytest.mark.parametrize("name,extra,expect", [
    ("checksum", {"nextcloud_archive_url": "http://mirror/corrupt-checksum/nextcloud-{{ nextcloud_version }}.tar.bz2"},
     r"checksum|sha256"),
    ("signature", {"nextcloud_archive_url": "http://mirror/bad-signature/nextcloud-{{ nextcloud_version }}.tar.bz2"},
     r"REFUSED: the GPG signature"),
    ("key", {"nextcloud_gpg_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567"},
     r"REFUSED: .* holds the key"),
])
def test_bad_release_is_refused_before_unpacking(tmp_path, lab_host, web_nodes, name, extra, expect):
    res, releases = _refused(tmp_path, name, extra)
    out = res.stdout + res.stderr
    try:
        assert res.returncode != 0, out[-3000:]
        assert re.search(expect, out), out[-3000:]
        host = lab_host(web_nodes[0])
        assert host.run("ls -A %s" % releases).stdout.strip() == "", "something was unpacked"
    finally:
        lab_host(web_nodes[0]).run("rm -rf %s %s-download" % (releases, releases))


def test_good_release_passes_the_same_path(tmp_path, lab_host, web_nodes):
    """Control for the refusal tests: the same path with the published files unpacks the release."""
    res, releases = _refused(tmp_path, "control", {})
    try:
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
        host = lab_host(web_nodes[0])
        assert host.file("%s/nextcloud-32.0.2/occ" % releases).exists
        assert host.file("%s/nextcloud-32.0.2/.nextcloud-ha-release" % releases).exists
    finally:
        lab_host(web_nodes[0]).run("rm -rf %s %s-download" % (releases, releases))
