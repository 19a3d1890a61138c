# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tree walk (module_utils/codebase_sync/walk.py): find and Python give the same manifest, the split walk."""

import os

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import (
    _complete_others,
    excluded_entries,
    parse_pairs,
    run_find,
    run_finds,
    scan_tree,
    split_walk,
    tree_manifest,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync import walk
from codebase_sync_helpers import _no_single_find, _odd_tree, _wide_tree


def test_scan_tree_entries(tree):
    m = scan_tree(str(tree), [])
    assert set(m) == {'.', 'apps', 'apps/files', 'apps/files/app.php', 'config', 'config/config.php',
                      'config/node.config.php', 'data', 'data/admin', 'data/admin/f.txt', 'index.php', 'link'}
    st = os.lstat(str(tree / 'index.php'))
    assert m['index.php'] == 'f %o %d %d 6 1000000000' % (st.st_mode & 0o7777, st.st_uid, st.st_gid)
    assert m['link'] == 'l %d %d apps/files' % (st.st_uid, st.st_gid)
    assert m['apps'].startswith('d ') and len(m['apps'].split()) == 4   # directory mtimes and sizes are not compared


def test_scan_tree_exclusion_prunes_and_reports(tree):
    seen = []
    m = scan_tree(str(tree), parse_patterns(['data/', 'config/node.config.php']),
                  on_excluded=lambda rel, is_dir: seen.append((rel, is_dir)))
    assert not any(p == 'data' or p.startswith('data/') for p in m)
    assert 'config/node.config.php' not in m and 'config/config.php' in m
    assert sorted(seen) == [('config/node.config.php', False), ('data', True)]


@pytest.mark.parametrize('patterns', [[], ['d*/f?'], ['**/f?']])
def test_find_and_python_walk_give_identical_manifests(tmp_path, patterns):
    root = _odd_tree(tmp_path)
    parsed = parse_patterns(patterns)
    by_find, excluded = tree_manifest(str(root), parsed)
    assert by_find == scan_tree(str(root), parsed)
    odd = os.fsdecode(b'caf\xc3\xa9 \xff\tname\nx')
    assert by_find[odd].endswith(' 1 1')                     # size 1, mtime 1
    assert by_find['fifo'].startswith('p 644 ') and by_find['fifo'].endswith(' 5')
    assert by_find['sl'].endswith(' target with spaces')
    if patterns:
        assert 'd[1]*/f?' not in by_find and excluded == [('d[1]*/f?', False)]
    else:
        assert by_find['d[1]*/f?'].startswith('f 4640 ') and by_find['d[1]*'].startswith('d 1750 ')


def test_tree_manifest_falls_back_to_python_when_exclusions_are_many(tmp_path, monkeypatch):
    root = _odd_tree(tmp_path)
    monkeypatch.setattr(excluded_entries, '__defaults__', (0, False))
    monkeypatch.setattr(walk, 'run_find', lambda *a: pytest.fail('find must not run'))
    m, excluded = tree_manifest(str(root), parse_patterns(['**/f?']), find_bin='false')
    assert 'd[1]*/f?' not in m and excluded == [('d[1]*/f?', False)]


def test_tree_manifest_fails_on_unreadable_tree(tmp_path):
    with pytest.raises(OSError):
        tree_manifest(str(tmp_path / 'missing'), [])
    with pytest.raises(OSError, match='find failed'):
        tree_manifest(str(tmp_path), [], find_bin='false')


def _pairs(data):
    """find's output as a sorted list of (path, attrs): a path printed twice shows."""
    items = data.split(b'\0')[:-1]
    return sorted(zip(items[0::2], items[1::2]))


@pytest.mark.parametrize('exclude', [[], ['data/', 'config/node.config.php', 'apps/e1/data/', 'core/e2/']])
def test_split_walk_gives_what_one_find_gives(tmp_path, many_cpus, monkeypatch, exclude):
    root = str(_wide_tree(tmp_path))
    excluded = excluded_entries(root, parse_patterns(exclude))
    plan = split_walk(root, excluded, 3)
    assert len(plan) == 3
    points = [p for group in plan for p in group]
    assert len(points) == len(set(points)) and 'apps/e0' in points and 'config/config.php' in points
    assert not set(points) & set(excluded)
    single = run_find('find', root, excluded)
    one = parse_pairs(single)
    _no_single_find(monkeypatch)
    assert _pairs(run_finds('find', root, excluded, jobs=3)) == _pairs(single)
    assert _complete_others(root, one) == scan_tree(root, parse_patterns(exclude))
    if exclude:
        assert not [p for p in one if p.startswith(('data', 'apps/e1/data', 'core/e2')) or p.endswith('node.config.php')]


def test_split_walk_declines_what_find_would_misread_or_not_gain_from(tmp_path, many_cpus, monkeypatch):
    root = _wide_tree(tmp_path)
    assert split_walk(str(root), [], 1) is None                     # one job
    assert split_walk(str(root), [], 50) is None                    # fewer entries than two per job
    monkeypatch.setattr(walk, 'MAX_FIND_START_POINTS', 5)
    assert split_walk(str(root), [], 2) is None                     # too many names
    monkeypatch.setattr(walk, 'MAX_FIND_START_POINTS', 4096)
    monkeypatch.setattr(walk, 'MAX_FIND_START_BYTES', 100)
    assert split_walk(str(root), [], 2) is None                     # too many bytes for argv
    monkeypatch.setattr(walk, 'MAX_FIND_START_BYTES', 64 * 1024)
    assert split_walk(str(root), [], 2) is not None
    (root / '-delete').mkdir()
    (root / '-delete' / 'a').write_text('a')
    assert split_walk(str(root), [], 2) is None                     # find would read it as an action
    single = run_find('find', str(root), [])
    calls = []
    monkeypatch.setattr(walk, 'run_find', lambda *a: calls.append(a) or single)
    assert run_finds('find', str(root), [], jobs=2) == single and len(calls) == 1


def test_split_walk_fails_when_one_find_fails(tmp_path, many_cpus):
    root = _wide_tree(tmp_path)
    # a find that works for the root's own listing (-maxdepth 1) and fails for the second-level walks
    fake = tmp_path / 'find'
    fake.write_text('#!/bin/sh\ncase "$*" in *maxdepth*) exec find "$@";; esac\necho walk broke >&2\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(OSError, match=r'find failed \(exit 3\): walk broke'):
        run_finds(str(fake), str(root), [], jobs=2)


def test_split_walk_fails_when_find_cannot_start(tmp_path, many_cpus):
    with pytest.raises(OSError):
        run_finds(str(tmp_path / 'no-such-find'), str(_wide_tree(tmp_path)), [], jobs=2)


def test_excluded_entries_names_exact_paths_or_gives_up(tree):
    pats = parse_patterns(['data/', 'config/node.config.php', 'apps/*/nothing-here'])
    assert excluded_entries(str(tree), pats) == ['config/node.config.php', 'data']
    # a file called "data" is not a directory: data/ does not exclude it
    assert excluded_entries(str(tree / 'apps'), parse_patterns(['files/'])) == ['files']
    assert excluded_entries(str(tree), parse_patterns(['**/*.php']), limit=2) is None
    (tree / 'config' / 'odd\nname').write_text('x')
    assert excluded_entries(str(tree), parse_patterns(['config/odd*'])) is None
