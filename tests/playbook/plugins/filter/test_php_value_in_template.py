# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The php_value filter through Ansible templating (called directly: tests/unit/plugins/filter/test_php_value.py)."""

from ansible_runner import run_tasks


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
