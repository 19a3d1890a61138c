"""`occ setupchecks` of the stand-in (issue #20): the admin overview's checks that a deployment can fix,
reported from the instance's own state with a real Nextcloud 32's class names, categories and texts, and the
occ commands that fix them (db:add-missing-*, maintenance:repair --include-expensive, app:disable app_api)."""

from __future__ import annotations

import json
import subprocess

from standin_support import as_user

SETTINGS = "OCA\\Settings\\SetupChecks\\"
DAEMON = "OCA\\AppAPI\\SetupChecks\\DaemonCheck"
IMAGICK = "OCA\\Theming\\SetupChecks\\PhpImagickModule"
INDICES_TEXT = (
    "Detected some missing optional indices. Occasionally new indices are added (by Nextcloud or installed "
    "applications) to improve database performance. Adding indices can sometimes take awhile and temporarily hurt "
    "performance so this is not done automatically during upgrades. Once the indices are added, queries to those "
    "tables should be faster. Use the command `occ db:add-missing-indices` to add them. ")
MIMETYPE_TEXT = (
    "One or more mimetype migrations are available. Occasionally new mimetypes are added to better handle certain "
    "file types. Migrating the mimetypes take a long time on larger instances so this is not done automatically "
    "during upgrades. Use the command `occ maintenance:repair --include-expensive` to perform the migrations.")


def checks(nc, *args):
    result = nc.occ("setupchecks", "--output=json", *args)
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def flat(results):
    return {cls: dict(check, category=category) for category, by_class in results.items() for cls, check in by_class.items()}


def php_has_imagick():
    modules = subprocess.run(as_user(["php", "-m"]), capture_output=True, text=True).stdout.lower().split()
    return "imagick" in modules


def test_fresh_install_reports_what_a_real_one_reports(nc):
    rc, results = checks(nc)
    assert rc == 1
    found = flat(results)
    for check in found.values():
        assert set(check) == {"name", "severity", "description", "descriptionParameters", "linkToDoc", "category"}
        assert check["severity"] in ("success", "info", "warning", "error")
    daemon = found[DAEMON]
    assert (daemon["category"], daemon["name"], daemon["severity"]) == ("system", "AppAPI deploy daemon", "error")
    assert daemon["description"] == ("AppAPI default deploy daemon is not set. Please register a default deploy daemon "
                                     "in the settings to install External Apps (Ex-Apps).")
    assert daemon["linkToDoc"] == ("https://docs.nextcloud.com/server/32/admin_manual/exapps_management/"
                                   "AppAPIAndExternalApps.html#setup-deploy-daemon")
    indices = found[SETTINGS + "DatabaseHasMissingIndices"]
    assert (indices["category"], indices["name"], indices["severity"]) == ("database", "Database missing indices", "warning")
    assert indices["description"] == (INDICES_TEXT + 'Missing indices:\n "fs_mtime" in table "filecache", \n'
                                      ' "fs_size" in table "filecache".')
    assert indices["linkToDoc"] == "https://docs.nextcloud.com/server/32/go.php?to=admin-long-running-migration-steps"
    mimetypes = found[SETTINGS + "MimeTypeMigrationAvailable"]
    assert (mimetypes["category"], mimetypes["severity"], mimetypes["description"]) == ("system", "warning", MIMETYPE_TEXT)
    phone = found[SETTINGS + "DefaultPhoneRegionSet"]
    assert (phone["category"], phone["severity"]) == ("config", "info")
    assert phone["description"].startswith("Your installation has no default phone region set.")
    mail = found[SETTINGS + "EmailTestSuccessful"]
    assert (mail["category"], mail["severity"]) == ("config", "info")
    assert mail["description"].startswith("You have not set or verified your email server configuration, yet.")
    window = found[SETTINGS + "MaintenanceWindowStart"]
    assert (window["category"], window["severity"]) == ("system", "warning")
    assert found[SETTINGS + "InternetConnectivity"]["category"] == "network"
    assert found[SETTINGS + "InternetConnectivity"]["severity"] == "warning"
    for name in ("DatabaseHasMissingColumns", "DatabaseHasMissingPrimaryKeys"):
        assert (found[SETTINGS + name]["severity"], found[SETTINGS + name]["description"]) == ("success", "None")
    imagick = found[IMAGICK]
    assert (imagick["category"], imagick["name"]) == ("php", "PHP Imagick module")
    if not php_has_imagick():
        assert imagick["severity"] == "info"
        assert imagick["description"] == ('The PHP module "imagick" is not enabled although the theming app is. For '
                                          "favicon generation to work correctly, you need to install and enable this module.")


def test_the_fixes_turn_every_check_green(nc):
    assert nc.occ("db:add-missing-indices").returncode == 0
    repair = nc.occ("maintenance:repair", "--include-expensive")
    assert repair.returncode == 0 and " - Repair mime types" in repair.stdout.splitlines()
    assert nc.occ("app:disable", "app_api").stdout == "app_api 32.0.0 disabled\n"
    assert nc.occ("app:disable", "app_api").stdout == "No such app enabled: app_api\n"
    nc.occ("config:system:set", "default_phone_region", "--value=DE")
    nc.occ("config:system:set", "maintenance_window_start", "--value=1", "--type=integer")
    nc.occ("config:system:set", "mail_domain", "--value=example.org")
    nc.occ("config:system:set", "has_internet_connection", "--value=false", "--type=boolean")
    rc, results = checks(nc)
    found = flat(results)
    assert DAEMON not in found, "the AppAPI check is registered by the app: gone once it is disabled"
    not_green = {cls: c["severity"] for cls, c in found.items() if c["severity"] != "success"}
    expected = {} if php_has_imagick() else {IMAGICK: "info"}
    assert not_green == expected
    assert rc == (0 if not expected else 1)
    assert found[SETTINGS + "DefaultPhoneRegionSet"]["description"] == "DE"
    assert found[SETTINGS + "EmailTestSuccessful"]["description"] == "Email test was successfully sent"
    assert found[SETTINGS + "MaintenanceWindowStart"]["description"] == (
        "Maintenance window to execute heavy background jobs is between 1:00 UTC and 5:00 UTC")
    assert found[SETTINGS + "InternetConnectivity"]["description"] == "Internet connectivity is disabled in configuration file."


def test_repair_without_expensive_steps_leaves_the_mimetypes(nc):
    assert " - Repair mime types" not in nc.occ("maintenance:repair").stdout
    _, results = checks(nc)
    assert results["system"][SETTINGS + "MimeTypeMigrationAvailable"]["severity"] == "warning"


def test_repair_writes_the_merged_config_and_keeps_maintenance_as_it_was(nc):
    extra = nc.root / "config" / "node.config.php"
    extra.write_text("<?php\n$CONFIG = array (\n  'trusted_domains' => array (0 => 'node.example'),\n);\n")
    subprocess.run(["chown", "--reference", str(nc.root / "config" / "config.php"), str(extra)], check=True)
    assert nc.occ("maintenance:repair", "--include-expensive").returncode == 0
    written = nc.php('include "config/config.php"; echo json_encode($CONFIG);')
    config = json.loads(written.stdout)
    assert config["maintenance"] is False
    assert config["trusted_domains"] == ["node.example"], "occ writes the merged configuration into config.php"


def test_no_category_argument_as_in_nextcloud_32(nc):
    # a real 32.0.2 runs every check; `occ setupchecks database` is refused (the argument came in a later release)
    bad = nc.occ("setupchecks", "database", "--output=json")
    assert bad.returncode == 1 and 'No arguments expected for "setupchecks" command, got "database".' in bad.stderr
    assert bad.stdout == ""


def test_plain_output(nc):
    result = nc.occ("setupchecks")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "\tdatabase:" in lines
    assert "\t\t✓ Database missing columns: None" in lines
    assert any(line.startswith("\t\t⚠ Database missing indices: Detected some missing optional indices.") for line in lines)


def test_the_mimetype_migrations_are_recorded_for_the_release_they_ran_for(nc, dist):
    # what the collection compares (occ config:app:get files mimetype_version against config:system:get version)
    unset = nc.occ("config:app:get", "files", "mimetype_version")
    assert (unset.returncode, unset.stdout) == (1, "")
    assert nc.occ("config:app:get", "files", "mimetype_version", "--default-value=").stdout == "\n"
    version = nc.occ("config:system:get", "version").stdout
    assert nc.occ("maintenance:repair", "--include-expensive").returncode == 0
    assert nc.occ("config:app:get", "files", "mimetype_version").stdout == version
    nc.upgrade_code(dist, "33.0.0")
    assert nc.occ("upgrade").returncode == 0
    assert nc.occ("config:app:get", "files", "mimetype_version").stdout == version != \
        nc.occ("config:system:get", "version").stdout


def test_mail_delivery_disabled_and_failed_test(nc):
    nc.occ("config:system:set", "mail_smtpmode", "--value=null")
    _, results = checks(nc)
    assert results["config"][SETTINGS + "EmailTestSuccessful"]["description"] == (
        'Mail delivery is disabled by instance config "mail_smtpmode".')
    nc.occ("config:system:delete", "mail_smtpmode")
    nc.occ("config:system:set", "mail_domain", "--value=example.org")
    # what the admin page records after a failed "Send email" (as the web user: SQLite's files are its own)
    insert = nc.php("(new PDO('sqlite:%s'))->exec(\"INSERT INTO oc_appconfig (appid, configkey, configvalue) "
                    "VALUES ('core', 'emailTestSuccessful', '0')\");" % (nc.data / "owncloud.db"))
    assert insert.returncode == 0, insert.stderr
    _, results = checks(nc)
    assert results["config"][SETTINGS + "EmailTestSuccessful"]["severity"] == "info"


def test_an_upgrade_brings_new_indices_and_mimetype_migrations(nc, dist):
    nc.occ("db:add-missing-indices")
    nc.occ("maintenance:repair", "--include-expensive")
    assert all(check["severity"] == "success" for check in checks(nc)[1]["database"].values())
    nc.upgrade_code(dist, "33.0.0")
    assert nc.occ("upgrade").returncode == 0
    _, results = checks(nc)
    found = flat(results)
    assert found[SETTINGS + "DatabaseHasMissingIndices"]["description"].endswith(
        'Missing indices:\n "fs_storage_size" in table "filecache".')
    assert found[SETTINGS + "MimeTypeMigrationAvailable"]["severity"] == "warning"
    added = nc.occ("db:add-missing-indices").stdout
    assert added == ("Adding additional fs_storage_size index to the oc_filecache table, this can take some time...\n"
                     "oc_filecache table updated successfully.\n")
    nc.occ("maintenance:repair", "--include-expensive")
    found = flat(checks(nc)[1])
    assert found[SETTINGS + "DatabaseHasMissingIndices"]["severity"] == "success"
    assert found[SETTINGS + "MimeTypeMigrationAvailable"]["severity"] == "success"
