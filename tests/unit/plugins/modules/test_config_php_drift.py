# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The drift report module's comparison, in process: key-by-key differences, secret values hidden.

The module through ansible-playbook: tests/playbook/plugins/modules/test_config_php_drift.py.
"""

from ansible_collections.nextcloud_ha.cluster.plugins.modules import config_php_drift as drift


def test_secret_keys_are_found_by_name_and_nesting():
    assert drift.holds_secret('dbpassword', 'x', set())
    assert drift.holds_secret('redis', {'host': 'h', 'password': 'p'}, set())
    assert drift.holds_secret('objectstore', {'arguments': {'key': 'k', 'secret': 's'}}, set())
    assert drift.holds_secret('ldap', 'x', {'ldap'})
    assert not drift.holds_secret('redis', {'host': 'h', 'port': 1}, set())
    assert not drift.holds_secret('memcache.locking', '\\OC\\Memcache\\Redis', set())


def test_compare_reports_each_key_and_hides_secret_values():
    ref_public, ref_secrets = drift.split({'a': 1, 'b': [1], 'dbpassword': 'x', 'gone': True}, 'n', set(), set())
    public, secrets = drift.split({'a': 2, 'b': [1], 'dbpassword': 'y', 'new': 'v'}, 'n', set(), set())
    out = drift.compare(ref_public, ref_secrets, public, secrets)
    assert out == [
        {'key': 'a', 'change': 'differs', 'secret': False, 'reference': 1, 'node': 2},
        {'key': 'dbpassword', 'change': 'differs', 'secret': True},
        {'key': 'gone', 'change': 'missing', 'secret': False, 'reference': True},
        {'key': 'new', 'change': 'extra', 'secret': False, 'node': 'v'},
    ]
    assert drift.compare(ref_public, ref_secrets, ref_public, ref_secrets) == []


def test_types_matter():
    ref_public, ref_secrets = drift.split({'port': 6379}, 'n', set(), set())
    public, secrets = drift.split({'port': '6379'}, 'n', set(), set())
    assert [d['key'] for d in drift.compare(ref_public, ref_secrets, public, secrets)] == ['port']
