# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one rule for config.php secrets, shared by config_php (diff masking) and config_php_drift (digests)."""

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.nextcloud_secrets import (
    MASK, holds_secret, is_secret_name, mask_php_secrets)


@pytest.mark.parametrize('name', ['dbpassword', 'passwordsalt', 'secret', 'password', 'mail_smtppassword', 'key',
                                  'secret_key', 'updater.secret', 'token', 'apikey', 'credentials', 'sse_key',
                                  'DBPASSWORD'])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize('name', ['dbuser', 'dbhost', 'instanceid', 'trusted_domains', 'keyboard', 'memcache.local',
                                  'bucket', 'hostname', 0])
def test_other_names(name):
    assert not is_secret_name(name)


def test_extra_names_and_nesting():
    assert is_secret_name('instanceid', extra=('instanceid',))
    assert holds_secret('objectstore', {'class': 'S3', 'arguments': {'bucket': 'b', 'secret': 's'}})
    assert holds_secret('list', [{'token': 't'}])
    assert not holds_secret('redis', {'host': '127.0.0.1', 'port': 6379})


def test_every_secret_string_value_is_masked_at_any_depth():
    text = ("$CONFIG = array (\n"
            "  'dbpassword' => 'pa\\'ss',\n"
            "  'dbuser' => 'nextcloud',\n"
            "  'objectstore' => array (\n"
            "    'arguments' => array (\n"
            "      'key' => 'AKIA',\n"
            "      'secret' => 's3cr3t',\n"
            "      'bucket' => 'cloud',\n"
            "    ),\n"
            "  ),\n"
            "  'updater.secret' => 'u',\n"
            ");\n")
    masked = mask_php_secrets(text)
    for secret in ("pa\\'ss", 'AKIA', 's3cr3t', "'u'"):
        assert secret not in masked, masked
    assert masked.count(MASK) == 4
    assert "'dbuser' => 'nextcloud'" in masked and "'bucket' => 'cloud'" in masked
