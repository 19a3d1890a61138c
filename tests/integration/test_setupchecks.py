"""Nextcloud's own admin checks on the deployed lab (issue #20).

`occ setupchecks --output=json` is what an administrator sees under Administration > Overview. On every web node it
must show no error and no warning that the deployment can fix; the only exceptions are the checks that need the
internet, which the lab does not have, listed here by class name. What the lab inventory sets (phone region,
maintenance window, a mail server that is only configuration) must be reported as done, AppAPI (no deploy daemon)
must be disabled, the imagick module loaded with SVG support, and the post-install steps (indices, mimetype
migrations) must have run.
"""
import json
import os

import pytest

from conftest import ROOT
from test_web import CONFIG, WEBROOT, lab_vars, node_config, playbook

SETTINGS = "OCA\\Settings\\SetupChecks\\"
# Checks the lab cannot pass: they need the internet, which the lab's containers do not reach.
NEEDS_INTERNET = {SETTINGS + "InternetConnectivity"}


def occ(host, *args):
    return host.run("cd %s && sudo -u www-data php occ --no-warnings %s" % (WEBROOT, " ".join(args)))


@pytest.fixture(scope="module")
def web_nodes(inventory):
    nodes = inventory.group("webservers")
    assert nodes, "the lab has no web node"
    return nodes


@pytest.fixture(scope="module")
def checks(lab_host, web_nodes):
    """{node: {class: check with its category}} from `occ setupchecks --output=json` on every web node."""
    found = {}
    for node in web_nodes:
        result = occ(lab_host(node), "setupchecks", "--output=json")
        # exit code 1 as soon as any check (also an info) is not a success
        assert result.rc in (0, 1), (node, result.rc, result.stdout, result.stderr)
        results = json.loads(result.stdout.strip().splitlines()[-1])
        found[node] = {cls: dict(check, category=category)
                       for category, by_class in results.items() for cls, check in by_class.items()}
        assert found[node], (node, "no setup check reported")
    return found


def test_no_error_or_warning_the_deployment_can_fix(checks):
    for node, by_class in checks.items():
        bad = {cls: (c["severity"], c["description"]) for cls, c in by_class.items()
               if c["severity"] in ("error", "warning") and cls not in NEEDS_INTERNET}
        assert bad == {}, (node, bad)


def test_app_api_is_disabled_without_a_deploy_daemon(lab_host, web_nodes, checks):
    for node in web_nodes:
        assert "OCA\\AppAPI\\SetupChecks\\DaemonCheck" not in checks[node], node
    apps = json.loads(occ(lab_host(web_nodes[0]), "app:list", "--output=json").stdout.strip().splitlines()[-1])
    assert "app_api" not in apps["enabled"], apps["enabled"]
    assert "app_api" in apps["disabled"], "the release ships app_api: it must be listed as disabled"


def test_post_install_steps_ran(checks):
    for node, by_class in checks.items():
        for name in ("DatabaseHasMissingIndices", "DatabaseHasMissingColumns", "DatabaseHasMissingPrimaryKeys",
                     "MimeTypeMigrationAvailable"):
            assert by_class[SETTINGS + name]["severity"] == "success", (node, name, by_class[SETTINGS + name])


def test_imagick_module_with_svg_support(lab_host, web_nodes, checks):
    for node in web_nodes:
        check = checks[node]["OCA\\Theming\\SetupChecks\\PhpImagickModule"]
        assert check["severity"] == "success", (node, check)
        # the PHP-FPM side too: the web requests are what the admin overview runs the checks in
        ini = lab_host(node).run("php-fpm$(php -r 'echo PHP_MAJOR_VERSION.\".\".PHP_MINOR_VERSION;') -m")
        assert "imagick" in ini.stdout.split(), (node, ini.stdout)


def test_phone_region_window_and_mail_from_the_inventory(lab_host, web_nodes, checks):
    wanted = lab_vars()
    region = wanted["nextcloud_default_phone_region"]
    window = int(wanted["nextcloud_maintenance_window_start"])
    for node in web_nodes:
        by_class = checks[node]
        phone = by_class[SETTINGS + "DefaultPhoneRegionSet"]
        assert (phone["severity"], phone["description"]) == ("success", region), (node, phone)
        mail = by_class[SETTINGS + "EmailTestSuccessful"]
        assert mail["severity"] == "success", (node, mail)
        maintenance = by_class[SETTINGS + "MaintenanceWindowStart"]
        assert maintenance["severity"] == "success", (node, maintenance)
        assert "between %d:00 UTC and %d:00 UTC" % (window, (window + 4) % 24) in maintenance["description"]
        infos = {cls for cls, c in by_class.items() if c["severity"] == "info"}
        assert infos.isdisjoint({SETTINGS + "DefaultPhoneRegionSet", SETTINGS + "EmailTestSuccessful",
                                 "OCA\\Theming\\SetupChecks\\PhpImagickModule"}), (node, infos)


def test_mail_settings_in_config_php(lab_host, web_nodes):
    wanted = lab_vars()
    for node in web_nodes:
        config = node_config(lab_host, node, CONFIG)
        assert config["mail_smtpmode"] == "smtp"
        assert config["mail_smtphost"] == wanted["nextcloud_mail_smtp_host"]
        assert config["mail_smtpport"] == int(wanted["nextcloud_mail_smtp_port"])
        assert config["mail_smtpauth"] is True
        assert config["mail_smtpname"] == wanted["nextcloud_mail_smtp_user"]
        assert config["mail_smtppassword"] == wanted["nextcloud_ha_smtp_password"]
        assert config["mail_domain"] == wanted["nextcloud_mail_domain"]
        assert config["mail_from_address"] == "nextcloud"
        assert config["default_phone_region"] == wanted["nextcloud_default_phone_region"]
        assert config["maintenance_window_start"] == int(wanted["nextcloud_maintenance_window_start"])


def test_lab_inventory_sets_what_this_test_checks():
    """The lab's own inventory is what makes the infos go away: a guard against a silently emptied lab.yml."""
    wanted = lab_vars()
    for key in ("nextcloud_default_phone_region", "nextcloud_maintenance_window_start", "nextcloud_mail_smtp_host",
                "nextcloud_mail_smtp_user", "nextcloud_ha_smtp_password"):
        assert wanted.get(key) not in (None, ""), key


@pytest.mark.parametrize("extra, shown", [
    ("nextcloud_default_phone_region=Germany", "nextcloud_default_phone_region ('Germany')"),
    ("nextcloud_default_phone_region=de", "nextcloud_default_phone_region ('de')"),
    ("nextcloud_maintenance_window_start=24", "nextcloud_maintenance_window_start ('24')"),
])
def test_preflight_refuses_a_bad_region_or_window_before_any_host_changes(extra, shown):
    """site.yml's first play (on the controller) stops the run: no cluster host is even contacted."""
    proc = playbook(os.path.join(ROOT, "site.yml"), "-e", extra, timeout=300)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "REFUSED" in proc.stdout and shown in proc.stdout, proc.stdout[-3000:]
    assert "PLAY [Check every cluster host runs a supported platform and has an address]" not in proc.stdout, proc.stdout[-3000:]
