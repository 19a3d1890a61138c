# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The manifest on the wire and the diff (module_utils/codebase_sync/manifest.py)."""


import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import (
    decode_manifest,
    describe_changes,
    diff_manifests,
    encode_manifest,
    manifest_header,
    parse_manifest_header,
    paths_to_clear,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import SyncError
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import scan_tree
from codebase_sync_helpers import _odd_tree


def test_manifest_roundtrip_with_odd_names(tmp_path):
    m = scan_tree(str(_odd_tree(tmp_path)), [])
    assert decode_manifest(encode_manifest(m)) == m


def test_decode_manifest_rejects_garbage():
    with pytest.raises(SyncError):
        decode_manifest(b'not pairs')
    with pytest.raises(SyncError, match='without the tree'):
        decode_manifest(b'a\0f 420 0 0 1 1\0')
    with pytest.raises(SyncError):
        parse_manifest_header(b'{"v": 1}\n')
    with pytest.raises(SyncError):
        parse_manifest_header(b'codebase_sync-manifest 2 10\n')     # an older export program
    assert parse_manifest_header(manifest_header(1234)) == 1234


def test_diff_manifests_rejects_bad_paths_and_entries_from_the_master():
    dest = {'.': 'd 755 0 0'}
    for rel, attrs in (('../etc/passwd', 'f 420 0 0 1 1'), ('/etc/passwd', 'f 420 0 0 1 1'),
                       ('a//b', 'f 420 0 0 1 1'), ('a', 'x 420 0 0 1 1'), ('a', '')):
        with pytest.raises(SyncError):
            diff_manifests({'.': 'd 755 0 0', rel: attrs}, dest)
    assert diff_manifests({'.': 'd 755 0 0', 'a b': 'f 420 0 0 1 2'}, dest) == (['a b'], [])


def _e(kind='f', mode=0o644, size=1, mtime=1, uid=33, gid=33, link=''):
    if kind == 'd':
        return 'd %o %d %d' % (mode, uid, gid)
    if kind == 'l':
        return 'l %d %d %s' % (uid, gid, link)
    return 'f %o %d %d %d %d' % (mode, uid, gid, size, mtime)


def test_diff_manifests_detects_every_attribute():
    base = {'.': _e('d', 0o755), 'a': _e(), 'b': _e(), 'c': _e(), 'd': _e(), 'e': _e(), 'l': _e('l', 0, link='x'),
            'same': _e()}
    src = dict(base)
    src.update({'a': _e(size=2), 'b': _e(mtime=2), 'c': _e(mode=0o600), 'd': _e(uid=0), 'e': _e(gid=0),
                'l': _e('l', 0, link='y'), 'new': _e()})
    dest = dict(base)
    dest['gone'] = _e()
    changed, removed = diff_manifests(src, dest)
    assert changed == ['a', 'b', 'c', 'd', 'e', 'l', 'new']
    assert removed == ['gone']


def test_diff_identical_is_empty(tree):
    m = scan_tree(str(tree), [])
    assert diff_manifests(m, dict(m)) == ([], [])


def test_paths_to_clear_never_keeps_shared_inodes():
    src = {'.': _e('d'), 'f': _e(size=2), 'dirmode': _e('d', 0o700), 'became_file': _e(), 'new': _e()}
    dest = {'.': _e('d', 0o700), 'f': _e(), 'dirmode': _e('d', 0o755), 'became_file': _e('d'),
            'became_file/x': _e(), 'gone': _e()}
    changed, removed = diff_manifests(src, dest)
    out = paths_to_clear(changed, removed, src, dest)
    # changed file is deleted (not written through the hard link), directory whose mode changed is kept,
    # a directory that became a file is deleted, children before parents, the root never
    assert out == ['gone', 'f', 'became_file/x', 'became_file']


def test_describe_changes_is_bounded():
    src = {'p%03d' % i: _e() for i in range(10)}
    lines = describe_changes(sorted(src), ['old'], src, {'p000': _e(size=9)}, limit=4)
    assert lines == ['- old', '~ p000', '+ p001', '+ p002', '... and 7 more']
