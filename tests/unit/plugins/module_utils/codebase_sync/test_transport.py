# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ssh and tar argv and the ssh session with the export program (module_utils/codebase_sync/transport.py).

The sessions run the export program the nc_sync role ships (roles/nc_sync/files/nc_sync_export.py).
"""

import os
import shlex
import sys

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import decode_manifest
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    EXPORT_FORBIDDEN,
    EXPORT_NO_SOURCE,
    export_request,
    SyncError,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.transport import (
    explain_ssh_failure,
    ExportSession,
    extract_argv,
    parse_tar_totals,
    ssh_argv,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import tree_manifest
from codebase_sync_helpers import EXPORT


def test_ssh_argv_pins_host_keys_and_quotes_remote_words():
    remote = export_request('manifest', "/var/www/next cloud; rm -rf /", ['data/', "it's"])
    argv = ssh_argv('/usr/bin/ssh', 'web1', 'ncsync', '/etc/k', remote, port=2222,
                    known_hosts='/etc/nextcloud-sync/known_hosts', connect_timeout=7)
    assert argv[0] == '/usr/bin/ssh'
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == '-o']
    assert 'StrictHostKeyChecking=yes' in opts and 'BatchMode=yes' in opts and 'IdentitiesOnly=yes' in opts
    assert 'UserKnownHostsFile=/etc/nextcloud-sync/known_hosts' in opts
    assert 'ConnectTimeout=7' in opts
    assert not any('StrictHostKeyChecking=no' in a for a in argv)
    assert argv[argv.index('-p') + 1] == '2222' and argv[argv.index('-i') + 1] == '/etc/k'
    assert argv[-3:-1] == ['--', 'web1']
    # the server splits the one command string back into exactly the words that were sent
    assert shlex.split(argv[-1]) == remote
    assert remote == ['nc-sync-export', 'manifest', '/var/www/next cloud; rm -rf /',
                      '--exclude', 'data/', '--exclude', "it's"]


def test_host_cannot_inject_options():
    argv = ssh_argv('ssh', '-oProxyCommand=x', 'u', 'k', ['nc-sync-export'])
    assert argv.index('--') < argv.index('-oProxyCommand=x')


def test_extract_argv_preserves_ownership():
    argv = extract_argv('/bin/tar', '/var/www/.nc.staging')
    assert argv[:6] == ['/bin/tar', '-x', '-f', '-', '-C', '/var/www/.nc.staging']
    for opt in ('--numeric-owner', '--same-owner', '--same-permissions', '--totals'):
        assert opt in argv
    assert extract_argv('tar', '/x', index_file='/t/i')[-2:] == ['-v', '--index-file=/t/i']


def test_parse_helpers():
    assert parse_tar_totals('Total bytes read: 10240 (10KiB, 1.2MiB/s)\n') == 10240
    assert parse_tar_totals('') == 0


@pytest.mark.parametrize('rc, err, fragment', [
    (255, 'Permission denied (publickey).', 'rejected the sync key'),
    (255, 'Host key verification failed.', 'not pinned'),
    (255, 'ssh: connect to host web1 port 22: Connection refused', 'cannot reach the master'),
    (EXPORT_NO_SOURCE, 'nc-sync-export: /x does not exist', 'src_path does not exist'),
    (EXPORT_FORBIDDEN, 'outside the allowed roots', 'refused the request'),
    (127, 'command not found', 'not installed'),
])
def test_explain_ssh_failure(rc, err, fragment):
    assert fragment in explain_ssh_failure(rc, err, 'web1', 'ncsync')


def test_ssh_options_prefer_a_cheap_cipher_and_no_compression_without_dropping_defaults():
    argv = ssh_argv('ssh', 'web1', 'ncsync', '/k', ['nc-sync-export'], known_hosts='/kh')
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == '-o']
    assert 'Compression=no' in opts and 'ControlMaster=no' in opts
    ciphers = [o for o in opts if o.startswith('Ciphers=')]
    assert ciphers == ['Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com']   # '^': ahead of the defaults


def _session(tmp_path, request, allow):
    """An ExportSession whose 'ssh' runs the export program locally (same stdin/stdout protocol)."""
    work = tmp_path / 'work'
    work.mkdir(exist_ok=True)
    argv = [sys.executable, EXPORT]
    for a in allow:
        argv += ['--allow-root', a]
    return ExportSession(argv + request[1:], str(work), 'web1', 'ncsync')


def test_session_manifest_then_only_the_asked_entries(tree, tmp_path):
    patterns = ['data/', 'config/node.config.php']
    s = _session(tmp_path, export_request('sync', str(tree), patterns), [str(tmp_path)])
    try:
        src = decode_manifest(s.read_manifest())
        assert src == tree_manifest(str(tree), parse_patterns(patterns))[0]
        s.request(['apps/files/app.php', 'index.php'])
        into = tmp_path / 'into'
        into.mkdir()
        assert s.extract(extract_argv('tar', str(into))) > 0
    finally:
        s.close()
    assert sorted(p.relative_to(into).as_posix() for p in into.rglob('*')) == [
        'apps', 'apps/files', 'apps/files/app.php', 'index.php']
    assert os.stat(str(into / 'index.php')).st_mtime == 1000000000
    assert s.bytes > 0


def test_session_without_names_ends_cleanly(tree, tmp_path):
    s = _session(tmp_path, export_request('sync', str(tree), []), [str(tmp_path)])
    try:
        s.read_manifest()
        s.end()
    finally:
        s.close()
    assert s.proc.returncode == 0


def test_session_explains_a_refusal(tree, tmp_path):
    s = _session(tmp_path, export_request('sync', str(tmp_path / 'nope'), []), [str(tmp_path)])
    with pytest.raises(SyncError, match='src_path does not exist'):
        s.read_manifest()
    s.close()
    s = _session(tmp_path, export_request('sync', str(tree), ['data/']), [str(tmp_path)])
    s.read_manifest()
    s.request(['data/admin/f.txt'])
    with pytest.raises(SyncError, match='refused the request'):
        s.extract(extract_argv('tar', str(tmp_path)))
    s.close()


def test_session_fails_when_the_stream_breaks(tree, tmp_path):
    """An archive cut short (the export's tar killed) fails, whatever tar made of it."""
    work = tmp_path / 'work'
    work.mkdir()
    s = ExportSession(['sh', '-c', 'head -c 3000 /dev/urandom; exit 70'], str(work), 'web1', 'ncsync', send=False)
    into = tmp_path / 'into'
    into.mkdir()
    with pytest.raises(SyncError, match='exit 70'):
        s.extract(extract_argv('tar', str(into)))
    s.close()
