"""occ: install and the commands the collection uses, against Nextcloud 32's outputs."""

from __future__ import annotations

import json
import os
import pwd
import stat

import pytest

from standin_support import IS_ROOT, WEB_USER

STATUS_KEYS = ["installed", "version", "versionstring", "edition", "maintenance", "needsDbUpgrade", "productname",
               "extendedSupport"]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_status_before_install(fresh):
    result = fresh.occ("status", "--output=json")
    assert result.returncode == 0
    status = json.loads(result.stdout)
    assert status["installed"] is False and status["version"] == "32.0.2.2"
    assert "Nextcloud is not installed - only a limited number of commands are available" in result.stderr
    assert sorted(os.listdir(fresh.root / "config")) == [".htaccess", "CAN_INSTALL", "config.php", "config.sample.php"]


def test_install_with_sqlite(fresh):
    result = fresh.install("--admin-email", "admin@example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "Nextcloud was successfully installed\n"
    config_dir = fresh.root / "config"
    assert not (config_dir / "CAN_INSTALL").exists()
    assert mode(config_dir / "config.php") == 0o640
    assert mode(fresh.data) == 0o770
    assert mode(fresh.data / "nextcloud.log") == 0o640
    assert (fresh.data / ".ncdata").read_text() == "# Nextcloud data directory\n# Do not change this file"
    keys = fresh.config_php_keys()
    assert keys == ["passwordsalt", "secret", "trusted_domains", "datadirectory", "dbtype", "version",
                    "overwrite.cli.url", "installed", "instanceid"]
    config = fresh.config()
    assert config["trusted_domains"] == ["localhost"]
    assert config["datadirectory"] == str(fresh.data)
    assert config["dbtype"] == "sqlite3"
    assert config["version"] == "32.0.2.2"
    assert config["overwrite.cli.url"] == "http://localhost"
    assert config["installed"] is True
    assert len(config["passwordsalt"]) == 30 and len(config["secret"]) == 48
    assert config["instanceid"].startswith("oc") and len(config["instanceid"]) == 12
    users = fresh.sql("SELECT uid, email FROM oc_users")
    assert users == [("admin", "admin@example.com")]
    assert fresh.sql("SELECT gid, uid FROM oc_group_user") == [("admin", "admin")]


def test_config_php_is_var_export_layout(nc):
    nc.occ("config:system:set", "redis", "host", "--value=redis1")
    nc.occ("config:system:set", "redis", "port", "--value=6379", "--type=integer")
    text = (nc.root / "config" / "config.php").read_text()
    exported = nc.php('include "config/config.php"; echo "<?php\\n\\$CONFIG = " . var_export($CONFIG, true) . ";\\n";')
    assert text == exported.stdout
    assert "  'redis' => \n  array (\n    'host' => 'redis1',\n    'port' => 6379,\n  ),\n" in text
    assert text.startswith("<?php\n$CONFIG = array (\n")


def test_install_is_gone_after_install(nc):
    result = nc.occ("maintenance:install", "--admin-pass", "x")
    assert result.returncode == 1
    assert 'Command "maintenance:install" is not defined.' in result.stderr
    assert result.stdout == ""


def test_install_refuses_unknown_option(fresh):
    # Nextcloud 32 has no --database-table-prefix option (and no dbport key)
    result = fresh.install("--database-table-prefix=nc_")
    assert result.returncode == 1
    assert 'The "--database-table-prefix" option does not exist.' in result.stderr
    assert "maintenance:install [--database DATABASE]" in result.stderr


def test_install_keeps_preseeded_values_like_nextcloud(fresh):
    seed = ("<?php\n$CONFIG = array (\n  'instanceid' => 'ocpreseeded1',\n  'passwordsalt' => 'seeded-salt',\n"
            "  'secret' => 'seeded-secret',\n  'memcache.local' => '\\\\OC\\\\Memcache\\\\APCu',\n"
            "  'redis' => array ('host' => 'redis1', 'port' => 6379),\n  'overwrite.cli.url' => 'https://cloud.example.com',\n);\n")
    (fresh.root / "config" / "config.php").write_text(seed)
    if IS_ROOT:
        os.chown(fresh.root / "config" / "config.php", pwd.getpwnam(WEB_USER).pw_uid, pwd.getpwnam(WEB_USER).pw_gid)
    result = fresh.install()
    assert result.returncode == 0, result.stdout + result.stderr
    config = fresh.config()
    assert config["instanceid"] == "ocpreseeded1"
    assert config["redis"] == {"host": "redis1", "port": 6379}
    assert config["memcache.local"] == "\\OC\\Memcache\\APCu"
    assert config["overwrite.cli.url"] == "https://cloud.example.com"
    # Nextcloud 32 generates passwordsalt and secret at install even when pre-seeded
    assert config["passwordsalt"] != "seeded-salt" and config["secret"] != "seeded-secret"
    assert fresh.config_php_keys()[:3] == ["instanceid", "passwordsalt", "secret"]


def test_install_errors(fresh):
    result = fresh.occ("maintenance:install", "--database=pgsql", "--admin-pass=x")
    assert result.returncode == 1 and "Database account not provided." in result.stderr
    result = fresh.occ("maintenance:install", "--database=oracle", "--admin-pass=x")
    assert result.returncode == 1 and "Database <oracle> is not supported." in result.stderr
    result = fresh.occ("maintenance:install", "--admin-pass=x", "--data-dir=/nonexistent/sub/dir")
    assert result.returncode == 1
    assert "Cannot create or write into the data directory /nonexistent/sub/dir" in result.stdout


def test_status_text_and_json(nc):
    text = nc.occ("status")
    assert text.returncode == 0
    assert text.stdout.splitlines() == [
        "  - installed: true", "  - version: 32.0.2.2", "  - versionstring: 32.0.2", "  - edition: ",
        "  - maintenance: false", "  - needsDbUpgrade: false", "  - productname: Nextcloud", "  - extendedSupport: false"]
    raw = nc.occ("status", "--output=json").stdout
    assert raw == ('{"installed":true,"version":"32.0.2.2","versionstring":"32.0.2","edition":"","maintenance":false,'
                   '"needsDbUpgrade":false,"productname":"Nextcloud","extendedSupport":false}\n')
    pretty = nc.occ("status", "--output=json_pretty").stdout
    assert list(json.loads(pretty)) == STATUS_KEYS and pretty.startswith('{\n    "installed": true,')
    assert nc.occ("status", "-e").stdout == ""


def test_config_system_get_set_delete(nc):
    def ok(*args):
        result = nc.occ(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert ok("config:system:get", "trusted_domains") == "localhost\n"
    missing = nc.occ("config:system:get", "nonexistent")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert ok("config:system:get", "nonexistent", "--default-value=dflt") == "dflt\n"
    assert ok("config:system:set", "trusted_domains", "1", "--value=10.0.0.22") == \
        "System config value trusted_domains => 1 set to string 10.0.0.22\n"
    assert ok("config:system:get", "trusted_domains") == "localhost\n10.0.0.22\n"
    assert ok("config:system:set", "redis", "host", "--value=redis1") == "System config value redis => host set to string redis1\n"
    assert ok("config:system:set", "redis", "port", "--value=6379", "--type=integer") == \
        "System config value redis => port set to integer 6379\n"
    assert ok("config:system:set", "redis", "timeout", "--value=1.5", "--type=float") == \
        "System config value redis => timeout set to double 1.5\n"
    assert ok("config:system:set", "filelocking.enabled", "--value=true", "--type=boolean") == \
        "System config value filelocking.enabled set to boolean true\n"
    assert ok("config:system:get", "redis", "--output=json") == '{"host":"redis1","port":6379,"timeout":1.5}\n'
    assert ok("config:system:get", "redis") == "host: redis1\nport: 6379\ntimeout: 1.5\n"
    assert ok("config:system:get", "redis", "port") == "6379\n"
    assert ok("config:system:get", "filelocking.enabled") == "true\n"
    assert ok("config:system:delete", "redis", "timeout") == "System config value redis => timeout deleted\n"
    assert nc.config()["redis"] == {"host": "redis1", "port": 6379}
    assert ok("config:system:set", "trusted_domains", "--type=json", '--value=["a.example","b.example"]') == \
        'System config value trusted_domains set to json ["a.example","b.example"]\n'
    assert nc.config()["trusted_domains"] == ["a.example", "b.example"]
    assert ok("config:system:delete", "filelocking.enabled") == "System config value filelocking.enabled deleted\n"
    assert "filelocking.enabled" not in nc.config()
    strict = nc.occ("config:system:delete", "nope", "--error-if-not-exists")
    assert strict.returncode == 1
    assert strict.stdout == "System config nope could not be deleted because it did not exist\n"
    bad = nc.occ("config:system:set", "x", "--value=abc", "--type=integer")
    assert bad.returncode == 1 and "Non-numeric value specified" in bad.stderr


def test_config_merge_of_extra_files(nc):
    extra = nc.root / "config" / "redis.config.php"
    extra.write_text("<?php\n$CONFIG = array('redis' => array('host' => 'from-extra', 'port' => 6380), 'loglevel' => 1);\n")
    later = nc.root / "config" / "zz.config.php"
    later.write_text("<?php\n$CONFIG = array('loglevel' => 3);\n")
    for path in (extra, later):
        os.chmod(path, 0o644)
    assert nc.occ("config:system:get", "redis", "host").stdout == "from-extra\n"
    assert nc.occ("config:system:get", "loglevel").stdout == "3\n"
    before = extra.read_text()
    assert nc.occ("maintenance:mode", "--on").returncode == 0
    # extra files are never rewritten; like Nextcloud 32 the merged values end up in config.php
    assert extra.read_text() == before
    assert "redis" in nc.config_php_keys() and "loglevel" in nc.config_php_keys()
    assert mode(nc.root / "config" / "config.php") == 0o640


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch users")
def test_wrong_user_is_refused(nc):
    uid = pwd.getpwnam(WEB_USER).pw_uid
    result = nc.occ("status", user="root")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "Console has to be executed with the user that owns the file config/config.php",
        "Current user id: 0",
        f"Owner id of config.php: {uid}",
        f"Try adding 'sudo -u #{uid}' to the beginning of the command (without the single quotes)",
        f"If running with 'docker exec' try adding the option '-u {uid}' to the docker command (without the single quotes)",
    ]
    nobody = nc.occ("status", user="nobody")
    assert nobody.returncode == 0  # Nextcloud exits without a code here
    assert nobody.stdout.startswith('Cannot write into "config" directory!\n')


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch users")
def test_root_may_run_when_it_owns_config(fresh):
    # Like Nextcloud: the first occ run creates config.php owned by the caller, root included
    result = fresh.occ("status", user="root")
    assert result.returncode == 0
    assert os.stat(fresh.root / "config" / "config.php").st_uid == 0


def test_maintenance_mode(nc):
    assert nc.occ("maintenance:mode").stdout == "Maintenance mode is currently disabled\n"
    assert nc.occ("maintenance:mode", "--on").stdout == "Maintenance mode enabled\n"
    assert nc.occ("maintenance:mode", "--on").stdout == "Maintenance mode already enabled\n"
    status = nc.occ("status", "--output=json")
    assert json.loads(status.stdout)["maintenance"] is True and status.stderr == ""
    other = nc.occ("config:system:get", "version")
    assert "Nextcloud is in maintenance mode, no apps are loaded." in other.stderr
    assert nc.occ("maintenance:mode", "--off").stdout == "Maintenance mode disabled\n"
    assert nc.config()["maintenance"] is False


def test_apps(nc):
    listing = nc.occ("app:list")
    # app_api and serverinfo ship enabled, as in a real Nextcloud 32
    assert listing.stdout == ("Enabled:\n  - app_api: 32.0.0\n  - dav: 1.34.2\n  - files: 2.4.0\n  - serverinfo: 4.0.0\n"
                              "Disabled:\n  - twofactor_totp: 14.0.0\n")
    assert json.loads(nc.occ("app:list", "--output=json").stdout) == {
        "enabled": {"app_api": "32.0.0", "dav": "1.34.2", "files": "2.4.0", "serverinfo": "4.0.0"},
        "disabled": {"twofactor_totp": "14.0.0"}}
    assert nc.occ("app:enable", "twofactor_totp").stdout == "twofactor_totp 14.0.0 enabled\n"
    assert nc.occ("app:enable", "twofactor_totp").stdout == "twofactor_totp already enabled\n"
    assert json.loads(nc.occ("app:list", "--output=json").stdout)["enabled"]["twofactor_totp"] == "14.0.0"
    assert nc.occ("app:disable", "twofactor_totp").stdout == "twofactor_totp 14.0.0 disabled\n"
    assert nc.occ("app:disable", "twofactor_totp").stdout == "No such app enabled: twofactor_totp\n"
    files = nc.occ("app:disable", "files")
    assert (files.returncode, files.stdout) == (2, "files can't be disabled.\n")
    unknown = nc.occ("app:enable", "nosuchapp")
    assert (unknown.returncode, unknown.stdout) == (1, "nosuchapp not found\n")


def test_twofactorauth_enforce(nc):
    assert nc.occ("twofactorauth:enforce").stdout == "Two-factor authentication is not enforced\n"
    assert nc.occ("twofactorauth:enforce", "--on").stdout == "Two-factor authentication is enforced for all users\n"
    config = nc.config()
    assert (config["twofactor_enforced"], config["twofactor_enforced_groups"], config["twofactor_enforced_excluded_groups"]) == \
        ("true", [], [])
    assert nc.occ("twofactorauth:enforce").stdout == "Two-factor authentication is enforced for all users\n"
    out = nc.occ("twofactorauth:enforce", "--on", "--group=admin", "--exclude=guests").stdout
    assert out == "Two-factor authentication is enforced for members of the group(s) admin, except members of guests\n"
    assert nc.config()["twofactor_enforced_groups"] == ["admin"]
    assert nc.occ("twofactorauth:enforce", "--off").stdout == "Two-factor authentication is not enforced\n"
    assert nc.config()["twofactor_enforced"] == "false"


def test_background_cron_and_cron_php(nc):
    assert nc.occ("background:cron").stdout == "Set mode for background jobs to 'cron'\n"
    assert nc.sql("SELECT configvalue FROM oc_appconfig WHERE appid='core' AND configkey='backgroundjobs_mode'") == [("cron",)]
    assert nc.occ("background:ajax").stdout == "Set mode for background jobs to 'ajax'\n"
    import subprocess

    from standin_support import as_user
    cron = subprocess.run(as_user(["php", "-f", str(nc.root / "cron.php")]), capture_output=True, text=True)
    assert cron.returncode == 0, cron.stdout + cron.stderr
    assert nc.sql("SELECT configvalue FROM oc_appconfig WHERE appid='core' AND configkey='backgroundjobs_mode'") == [("cron",)]
    assert len(nc.sql("SELECT configvalue FROM oc_appconfig WHERE appid='core' AND configkey='lastcron'")) == 1


def test_add_missing_indices_twice(nc):
    first = nc.occ("db:add-missing-indices")
    assert first.returncode == 0
    assert first.stdout == (
        "Adding additional fs_mtime index to the oc_filecache table, this can take some time...\n"
        "oc_filecache table updated successfully.\n"
        "Adding additional fs_size index to the oc_filecache table, this can take some time...\n"
        "oc_filecache table updated successfully.\n")
    indexes = {row[0] for row in nc.sql("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='oc_filecache'")}
    assert {"fs_mtime", "fs_size"} <= indexes
    second = nc.occ("db:add-missing-indices")
    assert (second.returncode, second.stdout) == (0, "")
    assert nc.occ("db:add-missing-columns").stdout == "Done.\n"
    assert nc.occ("db:add-missing-primary-keys").stdout == "Done.\n"


def test_data_fingerprint(nc):
    out = nc.occ("maintenance:data-fingerprint").stdout
    assert out.startswith("Updated data-fingerprint to ") and len(out.strip().split()[-1]) == 32
    assert nc.config()["data-fingerprint"] == out.strip().split()[-1]


def test_upgrade(nc, dist):
    none = nc.occ("upgrade")
    assert none.returncode == 0
    assert none.stdout.startswith("No upgrade required.\n\nNote: This command triggers the upgrade actions")
    nc.occ("app:enable", "twofactor_totp")
    nc.upgrade_code(dist, "33.0.0")
    status = json.loads(nc.occ("status", "--output=json").stdout)
    assert (status["version"], status["needsDbUpgrade"]) == ("33.0.0.2", True)
    blocked = nc.occ("config:system:get", "version")
    assert blocked.stdout == "32.0.2.2\n"
    assert "Nextcloud or one of the apps require upgrade" in blocked.stderr
    result = nc.occ("upgrade")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["Setting log level to debug", "Turned on maintenance mode", "Updating database schema", "Updated database"]
    assert "Updated <twofactor_totp> to 15.0.0" in lines
    assert lines[-4:] == ["Finished code integrity check", "Update successful", "Turned off maintenance mode", "Resetting log level"]
    config = nc.config()
    assert (config["version"], config["maintenance"], config["loglevel"]) == ("33.0.0.2", False, 2)
    assert nc.occ("upgrade").stdout.startswith("No upgrade required.")
    assert ("core", "33.0.0.2") in nc.sql("SELECT app, version FROM oc_migrations")


def test_upgrade_refuses_skipping_a_major(nc, dist):
    nc.upgrade_code(dist, "34.0.0")
    result = nc.occ("upgrade")
    assert result.returncode == 5
    assert "Exception: Updates between multiple major versions and downgrades are unsupported." in result.stdout
    assert "Maintenance mode is kept active" in result.stdout
    assert nc.config()["version"] == "32.0.2.2" and nc.config()["maintenance"] is True


def test_downgrade_is_refused(nc, dist):
    nc.occ("config:system:set", "version", "--value=33.0.0.2")
    result = nc.occ("status")
    assert result.returncode == 1
    assert result.stdout == ("An unhandled exception has been thrown:\nOCP\\HintException: [0]: Downgrading is not supported "
                             "and is likely to cause unpredictable issues (from 33.0.0.2 to 32.0.2.2) ()\n")


def test_unknown_command_and_list(nc):
    result = nc.occ("nosuch:command")
    assert result.returncode == 1
    assert 'There are no commands defined in the "nosuch" namespace.' in result.stderr
    result = nc.occ("frobnicate")
    assert result.returncode == 1 and 'Command "frobnicate" is not defined.' in result.stderr
    listing = nc.occ("list")
    assert listing.returncode == 0 and listing.stdout.startswith("Nextcloud 32.0.2\n")
    assert "config:system:set" in listing.stdout and "maintenance:install" not in listing.stdout
    assert nc.occ("--version").stdout == "Nextcloud 32.0.2\n"


def test_unreachable_database_fails_occ(nc):
    (nc.data / "owncloud.db").unlink()
    os.chmod(nc.data, 0o550)
    try:
        result = nc.occ("config:system:get", "version")
    finally:
        os.chmod(nc.data, 0o770)
    assert result.returncode == 1
    assert result.stdout.startswith("An unhandled exception has been thrown:\n")
    assert "Standin\\DatabaseException: Failed to connect to the database" in result.stdout
