#!/usr/bin/env python3
"""Build the Nextcloud test stand-in as a signed release archive.

    python3 tests/standin/build.py --version 32.0.2 --out DIR

writes, like download.nextcloud.com publishes a release:

    DIR/nextcloud-32.0.2.tar.bz2          top folder nextcloud/, root:root, files 0644, dirs 0755
    DIR/nextcloud-32.0.2.tar.bz2.sha256   "<sha256hex>  nextcloud-32.0.2.tar.bz2\\n"
    DIR/nextcloud-32.0.2.tar.bz2.asc      detached ASCII-armoured GPG signature
    DIR/test-signing-key.asc              public half of the throw-away signing key
    DIR/test-signing-key.fingerprint      its 40-hex fingerprint and a newline

The signing key (no passphrase) is generated once in DIR/.gnupg (or --key-dir)
and reused afterwards. Several versions can be built into one DIR. The archive
bytes depend only on the source tree and the version (fixed mtimes, sorted
entries), so rebuilding gives the same checksum.

Negative variants for tests (build them into their own --out, sharing the key
with --key-dir):
    --corrupt-checksum  the .sha256 file names a wrong digest
    --bad-signature     the .asc is a valid signature by the same key, but over
                        different bytes, so "gpg --verify" reports BAD signature

This is a TEST STAND-IN, never a default of the collection.
Needs only the Python standard library and the gpg binary (Debian: gnupg).
The key is Ed25519: generating it takes no time (an RSA key can stall for
minutes on a busy machine waiting for entropy).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "nextcloud"
KEY_UID = "Nextcloud test stand-in signing key (CI only) <standin-signing@example.invalid>"
VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?$")


def parse_version(text: str) -> tuple[int, int, int, int]:
    match = VERSION_RE.match(text)
    if not match:
        raise SystemExit(f"--version must look like 32.0.2 or 32.0.2.2, got {text!r}")
    major, minor, patch, build = match.groups()
    # Nextcloud 32.0.2 is 32.0.2.2 internally; the stand-in uses .2 unless given
    return int(major), int(minor), int(patch), int(build) if build is not None else 2


def version_php(version: tuple[int, int, int, int], channel: str) -> str:
    major, minor, patch, build = version
    return (
        "<?php \n"
        f"$OC_Version = array({major},{minor},{patch},{build});\n"
        f"$OC_VersionString = '{major}.{minor}.{patch}';\n"
        "$OC_Edition = '';\n"
        f"$OC_Channel = '{channel}';\n"
        "$OC_VersionCanBeUpgradedFrom = array (\n"
        "  'nextcloud' => \n"
        "  array (\n"
        f"    '{major - 1}.0' => true,\n"
        f"    '{major}.0' => true,\n"
        "  ),\n"
        "  'owncloud' => \n"
        "  array (\n"
        "    '10.13' => true,\n"
        "  ),\n"
        ");\n"
        f"$OC_Build = 'nextcloud_ha.cluster test stand-in {major}.{minor}.{patch}';\n"
        "$vendor = 'nextcloud';\n"
    )


def render(path: Path, data: bytes, version: tuple[int, int, int, int]) -> bytes:
    """Fill in the version placeholders of the apps' info.xml."""
    if path.name != "info.xml":
        return data
    major = version[0]
    text = data.decode()
    for key, value in {
        "@NC_MAJOR@": str(major),
        "@MINOR_FILES@": str(major - 28),  # files 2.4.0 in 32
        "@MINOR_DAV@": str(major + 2),  # dav 1.34.2 in 32
        "@MAJOR_TOTP@": str(major - 18),  # twofactor_totp 14.0.0 in 32
        "@MAJOR_SERVERINFO@": str(major - 28),  # serverinfo 4.0.0 in 32
    }.items():
        text = text.replace(key, value)
    return text.encode()


def build_archive(version: tuple[int, int, int, int], channel: str) -> bytes:
    major, minor, patch, _ = version
    # fixed per version: reproducible, yet newer versions carry newer mtimes (opcache)
    mtime = 1_700_000_000 + major * 1_000_000 + minor * 10_000 + patch * 100
    files: dict[str, bytes] = {}
    dirs: set[str] = {"nextcloud"}
    for path in sorted(SOURCE.rglob("*")):
        rel = path.relative_to(SOURCE)
        if "__pycache__" in rel.parts or path.name.endswith((".pyc", "~")):
            continue
        name = "nextcloud/" + rel.as_posix()
        if path.is_dir():
            dirs.add(name)
        elif path.is_file():
            files[name] = render(path, path.read_bytes(), version)
    files["nextcloud/version.php"] = version_php(version, channel).encode()
    for name in list(files):
        parent = name.rsplit("/", 1)[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""

    def info(name: str, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        entry.mode = 0o755 if is_dir else 0o644
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        entry.mtime = mtime
        entry.size = size
        return entry

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(dirs | set(files)):
            if name in files:
                tar.addfile(info(name, False, len(files[name])), io.BytesIO(files[name]))
            else:
                tar.addfile(info(name + "/", True))
    import bz2

    return bz2.compress(raw.getvalue(), 9)


def gpg(home: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", *args]
    result = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"gpg {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
    return result


def stop_agent(home: Path) -> None:
    """gpg starts an agent per home directory; do not leave it running."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)


def ensure_key(home: Path) -> str:
    """Create the throw-away signing key once; return its fingerprint."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    with open(home / "standin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        listing = gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
        if "fpr:" not in listing:
            gpg(home, "--quick-generate-key", KEY_UID, "ed25519", "sign", "never")
            listing = gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise SystemExit("no signing key found in " + str(home))


def write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", required=True, help="release version, e.g. 32.0.2 (internal 4th part defaults to 2)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--channel", default="stable", help="value of $OC_Channel (default: stable)")
    parser.add_argument("--key-dir", type=Path, help="directory holding the signing key's .gnupg (default: --out)")
    parser.add_argument("--corrupt-checksum", action="store_true", help="publish a wrong digest in the .sha256 file")
    parser.add_argument("--bad-signature", action="store_true", help="publish a signature over different bytes")
    args = parser.parse_args(argv)

    if shutil.which("gpg") is None:
        raise SystemExit("gpg is required (Debian package gnupg)")
    version = parse_version(args.version)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    home = (args.key_dir.resolve() if args.key_dir else out) / ".gnupg"
    try:
        fingerprint = ensure_key(home)
        publish(out, home, fingerprint, version, args)
    finally:
        stop_agent(home)
    return 0


def publish(out: Path, home: Path, fingerprint: str, version: tuple[int, int, int, int], args: argparse.Namespace) -> None:
    name = "nextcloud-{}.{}.{}.tar.bz2".format(*version[:3])
    archive = build_archive(version, args.channel)
    digest = hashlib.sha256(archive).hexdigest()
    published = hashlib.sha256(archive + b"corrupt").hexdigest() if args.corrupt_checksum else digest
    write(out / name, archive)
    write(out / (name + ".sha256"), f"{published}  {name}\n".encode())

    signed = archive + b"tampered" if args.bad_signature else archive
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / name
        payload.write_bytes(signed)
        gpg(home, "--yes", "--local-user", fingerprint, "--armor", "--detach-sign", "--output", str(payload) + ".asc", str(payload))
        write(out / (name + ".asc"), (Path(tmp) / (name + ".asc")).read_bytes())

    write(out / "test-signing-key.asc", gpg(home, "--armor", "--export", fingerprint).stdout)
    write(out / "test-signing-key.fingerprint", (fingerprint + "\n").encode())
    print(json.dumps({
        "archive": str(out / name),
        "sha256": digest,
        "published_sha256": published,
        "signature": str(out / (name + ".asc")),
        "public_key": str(out / "test-signing-key.asc"),
        "fingerprint": fingerprint,
        "version": "{}.{}.{}.{}".format(*version),
        "corrupt_checksum": args.corrupt_checksum,
        "bad_signature": args.bad_signature,
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
