# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the php_value filter, directly and through Ansible templating."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.nextcloud_ha.cluster.plugins.filter.php_value import FilterModule, php_value
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import render_config, to_php

from ansible_runner import run_tasks


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


def test_through_ansible(tmp_path):
    template = tmp_path / 'extra.php.j2'
    template.write_text(
        "<?php\n$CONFIG = array (\n"
        "  'trusted_domains' => {{ domains | nextcloud_ha.cluster.php_value(level=1) }},\n"
        "  'memcache.locking' => {{ locking | nextcloud_ha.cluster.php_value }},\n"
        "  'redis' => {{ redis | nextcloud_ha.cluster.php_value(level=1) }},\n"
        ");\n")
    results = run_tasks(tmp_path, [
        {'name': 'variables', 'ansible.builtin.set_fact': {
            'domains': ['cloud.example.org', '{{ "10.0.0." ~ 21 }}'],
            'locking': '\\OC\\Memcache\\Redis',
            'redis': {'host': 'redis1', 'port': '{{ 6000 + 379 }}', 'timeout': 1.5,
                      'failover': {'__php_expr__': '\\RedisCluster::FAILOVER_ERROR'}},
        }},
        {'name': 'template', 'ansible.builtin.template': {'src': str(template), 'dest': str(tmp_path / 'extra.config.php')}},
        {'name': 'filter error', 'ansible.builtin.debug': {'msg': '{{ (2 ** 70) | nextcloud_ha.cluster.php_value }}'},
         'ignore_errors': True},
    ])
    assert results[1]['changed'] is True
    assert (tmp_path / 'extra.config.php').read_text() == (
        "<?php\n$CONFIG = array (\n"
        "  'trusted_domains' => array (\n    0 => 'cloud.example.org',\n    1 => '10.0.0.21',\n  ),\n"
        "  'memcache.locking' => '\\\\OC\\\\Memcache\\\\Redis',\n"
        "  'redis' => array (\n    'host' => 'redis1',\n    'port' => 6379,\n    'timeout' => 1.5,\n"
        "    'failover' => \\RedisCluster::FAILOVER_ERROR,\n  ),\n"
        ");\n")
    assert results[2]['failed'] is True
    assert 'out of the 64-bit range' in results[2]['msg']
