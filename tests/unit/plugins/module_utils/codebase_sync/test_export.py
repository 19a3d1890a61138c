# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The master's export program (module_utils/codebase_sync/export.py), called in-process."""

import os
import shlex

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.export import (
    archive_argv,
    export_main,
    tree_archive_argv,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import (
    decode_manifest,
    parse_manifest_header,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    EXPORT_FAILED,
    EXPORT_FORBIDDEN,
    EXPORT_NO_SOURCE,
    export_request,
    EXPORT_USAGE,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import excluded_entries, scan_tree
from codebase_sync_helpers import _no_single_find, _wide_tree


def _export(tmp_path, request, allow=None, stdin=b''):
    out = tmp_path / 'out.bin'
    with open(str(out), 'wb') as f:
        args = []
        for a in allow or []:
            args += ['--allow-root', a]
        import io
        rc = export_main(args, {'SSH_ORIGINAL_COMMAND': ' '.join(shlex.quote(w) for w in request)},
                         stdin=io.BytesIO(stdin), stdout=f)
    return rc, out.read_bytes()


def test_export_manifest_of_a_split_walk_matches_local_scan(tmp_path, many_cpus, monkeypatch):
    root = _wide_tree(tmp_path)
    _no_single_find(monkeypatch)
    rc, data = _export(tmp_path, export_request('manifest', str(root), ['data/']), allow=[str(tmp_path)])
    assert rc == 0
    assert decode_manifest(data.split(b'\n', 1)[1]) == scan_tree(str(root), parse_patterns(['data/']))


def test_archive_argv_takes_names_from_stdin_without_recursion():
    argv = archive_argv('tar', '/srv/tree')
    assert argv[:6] == ['tar', '-c', '-f', '-', '-C', '/srv/tree']
    for opt in ('--null', '--no-recursion', '--files-from=-', '--numeric-owner'):
        assert opt in argv


def test_export_manifest_matches_local_scan(tree, tmp_path):
    rc, data = _export(tmp_path, export_request('manifest', str(tree), ['data/']), allow=[str(tmp_path)])
    assert rc == 0
    local = scan_tree(str(tree), parse_patterns(['data/']))
    head, body = data.split(b'\n', 1)
    assert parse_manifest_header(head + b'\n') == len(body)
    assert decode_manifest(body) == local


def test_export_refuses_outside_allowed_roots(tree, tmp_path):
    rc, data = _export(tmp_path, export_request('manifest', '/etc', []), allow=[str(tree)])
    assert rc == EXPORT_FORBIDDEN and data == b''


def test_export_refuses_symlink_escape(tree, tmp_path):
    os.symlink('/etc', str(tree / 'escape'))
    rc, _data = _export(tmp_path, export_request('manifest', str(tree / 'escape'), []), allow=[str(tree)])
    assert rc == EXPORT_FORBIDDEN


def test_export_missing_source(tmp_path):
    rc, _data = _export(tmp_path, export_request('tar', str(tmp_path / 'nope'), []), allow=[str(tmp_path)])
    assert rc == EXPORT_NO_SOURCE


@pytest.mark.parametrize('request_words', [
    ['nc-sync-export'],
    ['nc-sync-export', 'shell', '/x'],
    ['nc-sync-export', 'manifest', '/x', '--rsh', 'y'],
    ['nc-sync-export', 'manifest', 'relative'],
])
def test_export_rejects_malformed_requests(tmp_path, request_words):
    rc, _data = _export(tmp_path, request_words)
    assert rc == EXPORT_USAGE


def test_export_tar_list_refuses_escapes_and_excluded(tree, tmp_path):
    req = export_request('tar-list', str(tree), ['data/'])
    assert _export(tmp_path, req, stdin=b'../../etc/passwd\0')[0] == EXPORT_FORBIDDEN
    assert _export(tmp_path, req, stdin=b'data\0')[0] == EXPORT_FORBIDDEN
    assert _export(tmp_path, req, stdin=b'data/admin/f.txt\0')[0] == EXPORT_FORBIDDEN


def _members(data, tmp_path):
    path = tmp_path / 'a.tar'
    path.write_bytes(data)
    import tarfile
    with tarfile.open(str(path)) as t:
        return [m.name for m in t.getmembers()]


def _norm(name):
    return '.' if name in ('.', './') else (name[2:] if name.startswith('./') else name)


def test_export_tar_streams_the_tree_minus_exclusions(tree, tmp_path):
    rc, data = _export(tmp_path, export_request('tar', str(tree), ['data/', 'config/node.config.php']))
    assert rc == 0
    names = [_norm(n) for n in _members(data, tmp_path)]
    assert names[0] == '.'
    assert set(names) == {'.', 'apps', 'apps/files', 'apps/files/app.php', 'config', 'config/config.php',
                          'index.php', 'link'}
    assert names.index('apps') < names.index('apps/files') < names.index('apps/files/app.php')


def test_tree_archive_argv_matches_exclusions_literally():
    argv = tree_archive_argv('tar', '/srv/tree', ['data', 'config/[x]*.php'])
    assert argv[:6] == ['tar', '-c', '-f', '-', '-C', '/srv/tree']
    assert argv.index('--no-wildcards') < argv.index('--exclude=./data')
    assert '--anchored' in argv and '--exclude=./config/[x]*.php' in argv and argv[-2:] == ['--', '.']


@pytest.mark.parametrize('exclude', [['data/', 'config/node.config.php'], ['**/*.php']])
def test_export_tar_whole_tree_both_ways_gives_the_same_members(tree, tmp_path, exclude, monkeypatch):
    """tar's own walk (exact excludes) and the fed walk (too many exclusions) archive the same entries."""
    (tree / 'apps' / '[x]*').mkdir()
    (tree / 'apps' / '[x]*' / 'keep.txt').write_text('k')
    rc, data = _export(tmp_path, export_request('tar', str(tree), exclude))
    assert rc == 0
    own = sorted(_norm(n) for n in _members(data, tmp_path))
    monkeypatch.setattr(excluded_entries, '__defaults__', (0, False))
    rc, data = _export(tmp_path, export_request('tar', str(tree), exclude))
    assert rc == 0
    fed = sorted(_norm(n) for n in _members(data, tmp_path))
    assert own == fed
    assert 'apps/[x]*/keep.txt' in own
    if exclude == ['**/*.php']:
        assert not any(n.endswith('.php') for n in own) and 'data/admin/f.txt' in own
    else:
        assert not any(n.startswith('data') for n in own) and 'config/config.php' in own


def test_export_tar_list_only_listed(tree, tmp_path):
    rc, data = _export(tmp_path, export_request('tar-list', str(tree), []), stdin=b'config/config.php\0index.php\0')
    assert rc == 0
    assert _members(data, tmp_path) == ['config/config.php', 'index.php']


def test_export_tar_list_missing_file_fails(tree, tmp_path):
    rc, _data = _export(tmp_path, export_request('tar-list', str(tree), []), stdin=b'vanished.php\0')
    assert rc == EXPORT_FAILED


def test_export_tar_list_refuses_paths_through_symlinks(tree, tmp_path):
    os.symlink('/etc', str(tree / 'etclink'))
    req = export_request('tar-list', str(tree), [])
    assert _export(tmp_path, req, stdin=b'etclink/passwd\0')[0] == EXPORT_FORBIDDEN
    # the symlink itself may be listed (it is archived as a symlink)
    assert _export(tmp_path, req, stdin=b'etclink\0')[0] == 0
