# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the config_php module in process: the paths that Ansible runs cannot reach easily.

The module through ansible-playbook (check mode, runs, second runs, file attributes):
tests/playbook/plugins/modules/test_config_php.py.
"""

import json
import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import parse_config, to_python
from ansible_collections.nextcloud_ha.cluster.plugins.modules import config_php

from php_helpers import FIXTURES, PHP, needs_php, put_fixture, read


def run_main(args, capsys, monkeypatch, php=None):
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: php)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            config_php.main()
    return json.loads(capsys.readouterr().out)


def test_without_php_the_module_still_writes(tmp_path, capsys, monkeypatch):
    path = put_fixture(tmp_path, 'nextcloud_written')
    result = run_main({'path': path, 'settings': {'loglevel': 0}, '_ansible_diff': True}, capsys, monkeypatch)
    assert result['changed'] is True
    assert to_python(parse_config(read(path).decode()).data)['loglevel'] == 0
    result = run_main({'path': path, 'settings': {'loglevel': 0}}, capsys, monkeypatch)
    assert result['changed'] is False


def test_symlinks_are_written_through(tmp_path, capsys, monkeypatch):
    target = put_fixture(tmp_path, 'nextcloud_written', target='real.php', mode=0o640)
    link = str(tmp_path / 'config.php')
    os.symlink('real.php', link)
    result = run_main({'path': link, 'settings': {'loglevel': 0}, 'backup': True}, capsys, monkeypatch)
    assert result['changed'] is True
    assert os.path.islink(link) and os.readlink(link) == 'real.php'
    assert "  'loglevel' => 0,\n" in read(target).decode()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert read(result['backup_file']) == read(os.path.join(FIXTURES, 'nextcloud_written.config.php'))


@needs_php
def test_php_lint_runs_on_the_new_content(tmp_path, capsys, monkeypatch):
    path = put_fixture(tmp_path, 'nextcloud_written')
    before = read(path)
    result = run_main({'path': path, 'settings': {'x': {'__php_expr__': 'foo(1) bar(2)'}}}, capsys, monkeypatch, php=PHP)
    assert result['failed'] is True
    assert 'php -l rejects the new content' in result['msg']
    assert 'the new config.php' in result['msg']
    assert read(path) == before


def test_diff_masks_secret_values(tmp_path, capsys, monkeypatch):
    path = put_fixture(tmp_path, 'nextcloud_written')
    settings = {'dbpassword': 'n3w-db-s3cret', 'redis': {'host': 'redis1', 'password': 'r3dis-s3cret'}}
    result = run_main({'path': path, 'settings': settings, '_ansible_diff': True}, capsys, monkeypatch)
    assert result['changed'] is True
    assert set(result['changed_keys']) == {'dbpassword', 'redis'}
    shown = result['diff']['before'] + result['diff']['after']
    assert "'dbpassword' => '********'" in result['diff']['after']
    assert "'password' => '********'" in result['diff']['after']
    assert 'n3w-db-s3cret' not in shown and 'r3dis-s3cret' not in shown
    written = to_python(parse_config(read(path).decode()).data)
    assert written['dbpassword'] == 'n3w-db-s3cret' and written['redis']['password'] == 'r3dis-s3cret'
