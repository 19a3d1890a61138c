# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The drift report module through ansible-playbook: key-by-key differences, secret values never in its results.

The comparison functions in process: tests/unit/plugins/modules/test_config_php_drift.py.
"""

import json
import os

from ansible_runner import run_tasks
from php_helpers import PHP, needs_php

MASTER = r"""<?php
$CONFIG = array (
  'dbpassword' => 'master-db-secret',
  'passwordsalt' => 'salt-one',
  'loglevel' => 2,
  'redis' => array ('host' => '127.0.0.1', 'port' => 6379, 'password' => 'redis-secret'),
  'trusted_domains' => array (0 => 'cloud.example.org'),
  'timeout' => 1.5,
);
"""
NODE = r"""<?php
$CONFIG = array (
  'dbpassword' => 'node-db-secret',
  'passwordsalt' => 'salt-one',
  'loglevel' => 0,
  'redis' => array ('host' => '127.0.0.1', 'port' => 6379, 'password' => 'redis-secret'),
  'trusted_domains' => array (0 => 'cloud.example.org'),
  'mail_smtphost' => 'smtp.example.org',
  'mail_smtppassword' => 'mail-secret',
);
"""
SECRETS = ('master-db-secret', 'node-db-secret', 'salt-one', 'redis-secret', 'mail-secret')


@needs_php
def test_module_through_ansible(tmp_path):
    master, node = tmp_path / 'master.php', tmp_path / 'node.php'
    master.write_text(MASTER)
    node.write_text(NODE)
    tasks = [
        {'nextcloud_ha.cluster.config_php_drift': {'path': str(master), 'nonce': 'run-1', 'php': PHP},
         'register': 'm', 'no_log': True},
        {'nextcloud_ha.cluster.config_php_drift': {'path': str(node), 'nonce': 'run-1', 'php': PHP,
                                                   'reference': '{{ m.public }}',
                                                   'reference_secrets': '{{ m.secret_digests }}'}},
        {'nextcloud_ha.cluster.config_php_drift': {'path': str(master), 'nonce': 'run-1', 'php': PHP,
                                                   'reference': '{{ m.public }}',
                                                   'reference_secrets': '{{ m.secret_digests }}'}},
    ]
    results = run_tasks(tmp_path, tasks, check=True)
    node_result, same = results[1], results[2]
    assert node_result['drift'] is True and not node_result['changed']
    assert node_result['keys'] == ['dbpassword', 'loglevel', 'mail_smtphost', 'mail_smtppassword', 'timeout']
    by_key = dict((d['key'], d) for d in node_result['differences'])
    assert by_key['loglevel'] == {'key': 'loglevel', 'change': 'differs', 'secret': False, 'reference': 2, 'node': 0}
    assert by_key['dbpassword'] == {'key': 'dbpassword', 'change': 'differs', 'secret': True}
    assert by_key['mail_smtppassword']['change'] == 'extra' and 'node' not in by_key['mail_smtppassword']
    assert by_key['timeout']['reference'] == 1.5
    text = json.dumps(results)
    for secret in SECRETS:
        assert secret not in text
    assert same['drift'] is False and same['differences'] == []
    assert os.path.exists(str(master))
