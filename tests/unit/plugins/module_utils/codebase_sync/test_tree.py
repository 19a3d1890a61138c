# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Operations on the node's trees (module_utils/codebase_sync/tree.py)."""

import os
import subprocess

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.tree import (
    exchange,
    link_copy,
    safe_remove_tree,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import scan_tree


def _run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def test_link_copy_shares_inodes_and_skips_excluded_dirs(tree, tmp_path):
    dst = str(tmp_path / 'staging')
    pats = parse_patterns(['data/', 'config/node.config.php'])
    excluded = link_copy(str(tree), dst, pats, _run)
    assert excluded == ['data']
    assert not os.path.exists(os.path.join(dst, 'data'))
    for rel in ('index.php', 'apps/files/app.php', 'config/config.php', 'config/node.config.php'):
        assert os.stat(os.path.join(dst, rel)).st_ino == os.stat(str(tree / rel)).st_ino
    assert os.readlink(os.path.join(dst, 'link')) == 'apps/files'
    # directories are new directories with the same metadata
    for rel in ('.', 'apps', 'config'):
        s, d = os.stat(str(tree / rel)), os.stat(os.path.join(dst, rel))
        assert s.st_ino != d.st_ino and s.st_mode == d.st_mode
    assert scan_tree(dst, pats) == scan_tree(str(tree), pats)


def test_safe_remove_tree_keeps_excluded_dirs(tree):
    left = safe_remove_tree(str(tree), parse_patterns(['data/']))
    assert left == ['data']
    assert os.path.exists(str(tree / 'data' / 'admin' / 'f.txt'))
    assert sorted(os.listdir(str(tree))) == ['data']


def test_safe_remove_tree_without_exclusions_removes_all(tree):
    assert safe_remove_tree(str(tree), []) == []
    assert not os.path.exists(str(tree))


def test_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    (a / 'from_a').write_text('')
    if not exchange(str(a), str(b)):
        pytest.skip('renameat2(RENAME_EXCHANGE) not available here')
    assert os.listdir(str(b)) == ['from_a'] and os.listdir(str(a)) == []
