# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the php_value filter, called directly (through Ansible templating: tests/playbook/plugins/filter)."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nextcloud_ha.cluster.plugins.filter.php_value import FilterModule, php_value
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import render_config, to_php


def test_registered():
    assert FilterModule().filters() == {'php_value': php_value}


@pytest.mark.parametrize('value, expected', [
    ('\\OC\\Memcache\\Redis', "'\\\\OC\\\\Memcache\\\\Redis'"),
    (6379, '6379'),
    (1.5, '1.5'),
    (None, 'NULL'),
    (['a'], "array (\n  0 => 'a',\n)"),
    ({'__php_expr__': "getenv('X')"}, "getenv('X')"),
])
def test_values(value, expected):
    assert php_value(value) == expected


def test_level_matches_what_the_module_writes():
    value = {'host': 'redis1', 'seeds': ['a', 'b']}
    # the module writes the same array text, after "'redis' => \n  "
    assert "  'redis' => \n  " + php_value(value, level=1) + ',\n' in render_config({'redis': to_php(value)})


@pytest.mark.parametrize('value, level, message', [
    ({1, 2}, 0, 'a value of type set cannot be written'),
    (2 ** 64, 0, 'out of the 64-bit range'),
    ({'__php_expr__': 'a, b'}, 0, 'not a single PHP expression'),
    ('x', -1, 'level must be a non-negative integer'),
    ('x', '1', 'level must be a non-negative integer'),
    ('x', True, 'level must be a non-negative integer'),
])
def test_errors(value, level, message):
    with pytest.raises(AnsibleFilterError, match=message):
        php_value(value, level)
