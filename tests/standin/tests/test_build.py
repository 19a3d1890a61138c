"""build.py: release-shaped archive, published checksum and detached signature."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile

import pytest

from standin_support import BUILD


def verify(tmp_path, dist, name):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--import", str(dist / "test-signing-key.asc")], env=env, check=True, capture_output=True)
    try:
        return subprocess.run(["gpg", "--batch", "--status-fd", "1", "--verify", str(dist / (name + ".asc")), str(dist / name)],
                              env=env, capture_output=True, text=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


def test_checksum_file_is_in_published_format_and_verifies(dist):
    for version in ("32.0.2", "33.0.0"):
        name = f"nextcloud-{version}.tar.bz2"
        text = (dist / (name + ".sha256")).read_text()
        digest = hashlib.sha256((dist / name).read_bytes()).hexdigest()
        assert text == f"{digest}  {name}\n"
        result = subprocess.run(["sha256sum", "-c", name + ".sha256"], cwd=dist, capture_output=True, text=True)
        assert result.returncode == 0 and f"{name}: OK" in result.stdout


def test_signature_verifies_with_published_key(dist, tmp_path):
    result = verify(tmp_path, dist, "nextcloud-32.0.2.tar.bz2")
    assert result.returncode == 0, result.stderr
    fingerprint = (dist / "test-signing-key.fingerprint").read_text()
    assert len(fingerprint.strip()) == 40 and fingerprint.endswith("\n")
    assert f"VALIDSIG {fingerprint.strip()}" in result.stdout


def test_archive_layout_is_release_like(dist):
    with tarfile.open(dist / "nextcloud-32.0.2.tar.bz2") as tar:
        members = tar.getmembers()
        names = {m.name.rstrip("/") for m in members}
        assert all(n == "nextcloud" or n.startswith("nextcloud/") for n in names)
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root")
            assert m.mode == (0o755 if m.isdir() else 0o644), m.name
        for required in ("occ", "console.php", "status.php", "index.php", "remote.php", "cron.php", "probe.php",
                         "version.php", ".htaccess", "config/CAN_INSTALL", "config/config.sample.php",
                         "apps/twofactor_totp/appinfo/info.xml", "apps/files/appinfo/info.xml", "apps/dav/appinfo/info.xml"):
            assert f"nextcloud/{required}" in names, required
        assert "nextcloud/config/config.php" not in names
        version_php = tar.extractfile("nextcloud/version.php").read().decode()
        totp = tar.extractfile("nextcloud/apps/twofactor_totp/appinfo/info.xml").read().decode()
    assert "$OC_Version = array(32,0,2,2);" in version_php
    assert "$OC_VersionString = '32.0.2';" in version_php
    assert "$OC_Channel = 'stable';" in version_php
    assert "<version>14.0.0</version>" in totp


def test_rebuild_is_byte_identical(dist, tmp_path):
    subprocess.run([sys.executable, str(BUILD), "--version", "32.0.2", "--out", str(tmp_path), "--key-dir", str(dist)],
                   check=True, capture_output=True)
    assert (tmp_path / "nextcloud-32.0.2.tar.bz2").read_bytes() == (dist / "nextcloud-32.0.2.tar.bz2").read_bytes()


def test_rebuild_reuses_key(dist):
    before = (dist / "test-signing-key.fingerprint").read_text()
    subprocess.run([sys.executable, str(BUILD), "--version", "32.0.2", "--out", str(dist)], check=True, capture_output=True)
    assert (dist / "test-signing-key.fingerprint").read_text() == before


@pytest.mark.parametrize("flag", ["--corrupt-checksum", "--bad-signature"])
def test_negative_variants_fail_verification(dist, tmp_path, flag):
    bad = tmp_path / "bad"
    subprocess.run([sys.executable, str(BUILD), "--version", "32.0.2", "--out", str(bad), "--key-dir", str(dist), flag],
                   check=True, capture_output=True)
    name = "nextcloud-32.0.2.tar.bz2"
    assert (bad / "test-signing-key.fingerprint").read_text() == (dist / "test-signing-key.fingerprint").read_text()
    checksum = subprocess.run(["sha256sum", "-c", name + ".sha256"], cwd=bad, capture_output=True, text=True)
    signature = verify(tmp_path, bad, name)
    if flag == "--corrupt-checksum":
        assert checksum.returncode != 0
        assert signature.returncode == 0
    else:
        assert checksum.returncode == 0
        assert signature.returncode != 0 and "BADSIG" in signature.stdout
