# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Exclusion patterns and the check of relative paths (module_utils/codebase_sync/patterns.py)."""


import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import (
    check_relpath,
    is_excluded,
    is_excluded_path,
    may_contain_excluded,
    parse_pattern,
    parse_patterns,
)


@pytest.mark.parametrize('pattern, path, is_dir, expected', [
    ('data/', 'data', True, True),
    ('data/', 'data', False, False),            # dir-only pattern does not match a file
    ('data', 'data', False, True),
    ('data/', 'apps/data', True, False),        # anchored at the root
    ('config/node.config.php', 'config/node.config.php', False, True),
    ('config/node.config.php', 'config/config.php', False, False),
    ('config/*.config.php', 'config/node.config.php', False, True),
    ('config/*.config.php', 'config/sub/x.config.php', False, False),  # * stays in one component
    ('**/.git/', 'apps/foo/.git', True, True),
    ('**/.git/', '.git', True, True),           # ** matches zero components
    ('./data/', 'data', True, True),
    ('/data/', 'data', True, True),
    ('apps/*/tests/', 'apps/files/tests', True, True),
    ('apps/*/tests/', 'apps/files/lib/tests', True, False),
    ('a?c', 'abc', False, True),
    ('[ab]x', 'cx', False, False),
])
def test_is_excluded(pattern, path, is_dir, expected):
    assert is_excluded(path, is_dir, parse_patterns([pattern])) is expected


def test_root_is_never_excluded():
    assert not is_excluded('.', True, parse_patterns(['**/x']))


@pytest.mark.parametrize('pattern', ['', '   ', '/', '.', './', '**', '**/**', 'a/../b', '..'])
def test_bad_patterns(pattern):
    with pytest.raises(ValueError):
        parse_pattern(pattern)


@pytest.mark.parametrize('patterns, rel, expected', [
    (['data/'], '.', True),
    (['data/'], 'apps', False),
    (['config/node.config.php'], 'config', True),
    (['config/node.config.php'], 'core', False),
    (['**/.git/'], 'apps/foo', True),
    (['apps/*/tests/'], 'apps', True),
    (['apps/*/tests/'], 'apps/files', True),
    (['apps/*/tests/'], 'apps/files/tests', False),   # nothing *below* it can match further
    ([], '.', False),
])
def test_may_contain_excluded(patterns, rel, expected):
    assert may_contain_excluded(rel, parse_patterns(patterns)) is expected


@pytest.mark.parametrize('rel', ['/etc/passwd', '../x', 'a/../../b', 'a//b', './a', 'a/./b', '', 'a/\0b'])
def test_check_relpath_rejects(rel):
    with pytest.raises(ValueError):
        check_relpath(rel)


@pytest.mark.parametrize('rel', ['.', 'a', 'a/b c/d', 'apps/x.php', '.htaccess'])
def test_check_relpath_accepts(rel):
    assert check_relpath(rel) == rel


@pytest.mark.parametrize('rel, expected', [('data/admin/f.txt', True), ('data', False), ('datax', False)])
def test_is_excluded_path_checks_parents(rel, expected):
    assert is_excluded_path(rel, False, parse_patterns(['data/'])) is expected
