# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the config_php module through Ansible (ansible-playbook as a subprocess).

The paths Ansible runs cannot reach easily are tested in process in tests/unit/plugins/modules/test_config_php.py.

They assert on the real files: contents, modes, owners, inodes and mtimes
after check mode, after a run and after a second run.
"""

import os
import stat

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import edit_config_text
from ansible_collections.nextcloud_ha.cluster.plugins.modules import config_php

from ansible_runner import run_tasks
from php_helpers import OLD, PHP, put_fixture, read


def config_task(name, **args):
    return {'name': name, 'nextcloud_ha.cluster.config_php': args}


SETTINGS = {
    'trusted_domains': ['cloud.example.org', '10.0.0.21'],
    'memcache.locking': '\\OC\\Memcache\\Redis',
    'redis': {'host': 'redis1', 'port': 6379, 'timeout': 1.5},
    'redis.cluster': {'failover_mode': {'__php_expr__': '\\RedisCluster::FAILOVER_ERROR'}},
}


def test_check_mode_reports_changes_without_writing(tmp_path):
    path = put_fixture(tmp_path, 'nextcloud_written')
    before = read(path)
    inode = os.stat(path).st_ino
    missing = str(tmp_path / 'new.config.php')

    results = run_tasks(tmp_path, [
        config_task('edit', path=path, settings=SETTINGS, remove=['theme'], backup=True),
        config_task('create', path=missing, create=True, settings={'debug': False}),
        config_task('nothing to do', path=path, settings={'loglevel': 2}),
    ], check=True, diff=True)

    edit, create, nothing = results
    assert edit['changed'] is True
    assert edit['changed_keys'] == ['trusted_domains', 'redis.cluster', 'theme']  # memcache.locking is already set
    assert 'backup_file' not in edit
    expected = edit_config_text(before.decode(), SETTINGS, ['theme']).text
    assert edit['diff']['before'] == config_php._printable(before.decode())  # secrets masked
    assert edit['diff']['after'] == config_php._printable(expected)
    assert edit['diff']['before_header'] == path
    assert create['changed'] is True
    assert create['diff']['before'] == ''
    assert "  'debug' => false,\n" in create['diff']['after']
    assert nothing['changed'] is False
    # Nothing was written
    assert read(path) == before
    assert os.stat(path).st_mtime == OLD
    assert os.stat(path).st_ino == inode
    assert not os.path.exists(missing)
    assert sorted(os.listdir(str(tmp_path))) == ['config.php', 'playbook.yml']


def test_run_writes_once_and_second_run_changes_nothing(tmp_path):
    path = put_fixture(tmp_path, 'nextcloud_written', mode=0o640)
    before = read(path)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)

    results = run_tasks(tmp_path, [
        config_task('edit', path=path, settings=SETTINGS, remove=['theme'], backup=True),
        {'name': 'stat after the first run', 'ansible.builtin.stat': {'path': path, 'get_checksum': False}},
        config_task('same again', path=path, settings=SETTINGS, remove=['theme'], backup=True),
        config_task('merge of values in place', path=path, merge=True, settings={'redis': {'port': 6379}, 'trusted_domains': {1: '10.0.0.21'}}),
        config_task('the same in check mode', path=path, settings=SETTINGS, remove=['theme']),
    ], diff=True)
    first, after_first, second, merged, checked = results

    expected = edit_config_text(before.decode(), SETTINGS, ['theme']).text
    assert first['changed'] is True
    assert read(path).decode() == expected
    assert "  'trusted_domains' => \n  array (\n    0 => 'cloud.example.org',\n    1 => '10.0.0.21',\n  ),\n" in expected
    assert "    'failover_mode' => \\RedisCluster::FAILOVER_ERROR,\n" in expected
    assert read(first['backup_file']) == before
    assert first['diff']['after'] == config_php._printable(expected)  # secrets masked

    for result in (second, merged, checked):
        assert result['changed'] is False, result
        assert result['changed_keys'] == []
        assert 'backup_file' not in result
    info = os.stat(path)
    assert info.st_ino == after_first['stat']['inode']
    assert info.st_mtime == after_first['stat']['mtime']
    assert stat.S_IMODE(info.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (65534, 65534)
    # only the file, its backup and our playbook; no temporary files left behind
    assert sorted(os.listdir(str(tmp_path))) == sorted(['config.php', os.path.basename(first['backup_file']), 'playbook.yml'])


def test_create_and_file_attributes(tmp_path):
    created = str(tmp_path / 'created.config.php')
    private = str(tmp_path / 'private.config.php')
    empty = str(tmp_path / 'empty.config.php')
    open(empty, 'w').close()
    edited = put_fixture(tmp_path, 'hand_edited', mode=0o644)

    results = run_tasks(tmp_path, [
        config_task('create', path=created, create=True, settings={'filelocking.enabled': True}),
        config_task('create again', path=created, create=True, settings={'filelocking.enabled': True}),
        config_task('create with mode', path=private, create=True, mode='0600', settings={}),
        config_task('empty file counts as missing with create', path=empty, create=True, settings={'debug': True}),
        config_task('only change the mode', path=edited, mode='0640', settings={'installed': True}),
        dict(config_task('missing without create', path=str(tmp_path / 'missing.php'), settings={'debug': True}), ignore_errors=True),
        dict(config_task('directory missing', path=str(tmp_path / 'nope' / 'config.php'), create=True), ignore_errors=True),
        dict(config_task('a directory', path=str(tmp_path)), ignore_errors=True),
    ])
    create, again, with_mode, from_empty, mode_only, missing, no_dir, directory = results

    assert create['changed'] is True
    assert read(created) == b"<?php\n$CONFIG = array (\n  'filelocking.enabled' => true,\n);\n"
    assert stat.S_IMODE(os.stat(created).st_mode) == 0o640
    assert again['changed'] is False
    assert with_mode['changed'] is True
    assert read(private) == b"<?php\n$CONFIG = array (\n);\n"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert from_empty['changed'] is True
    assert read(empty) == b"<?php\n$CONFIG = array (\n  'debug' => true,\n);\n"
    assert mode_only['changed'] is True
    assert mode_only['changed_keys'] == []
    assert stat.S_IMODE(os.stat(edited).st_mode) == 0o640
    assert os.stat(edited).st_mtime == OLD
    assert missing['failed'] is True
    assert 'does not exist; set create=true' in missing['msg']
    assert not os.path.exists(str(tmp_path / 'missing.php'))
    assert no_dir['failed'] is True
    assert 'does not exist' in no_dir['msg']
    assert directory['failed'] is True
    assert 'is a directory' in directory['msg']


def test_bad_input_leaves_the_file_untouched(tmp_path):
    good = put_fixture(tmp_path, 'nextcloud_written')
    yaml_file = str(tmp_path / 'yaml.php')
    with open(yaml_file, 'w') as handle:
        handle.write('trusted_domains:\n  - cloud.example.org\n')
    broken = str(tmp_path / 'broken.php')
    with open(broken, 'w') as handle:
        handle.write("<?php\n$CONFIG = array (\n  'dbhost' => 'localhost',\n  'dbname' => 'nextcloud,\n);\n")
    for path in (yaml_file, broken):
        os.utime(path, (OLD, OLD))
    snapshots = dict((path, read(path)) for path in (good, yaml_file, broken))

    tasks = [
        config_task('not a config.php', path=yaml_file, settings={'debug': True}),
        config_task('unterminated string', path=broken, settings={'debug': True}),
        config_task('integer too large for PHP', path=good, settings={'loglevel': 2 ** 70}),
        config_task('empty expression', path=good, settings={'dbpassword': {'__php_expr__': ''}}),
        config_task('expression with extra keys', path=good, settings={'redis': {'__php_expr__': 'X', 'host': 'y'}}),
        config_task('set and remove the same key', path=good, settings={'debug': True}, remove=['debug']),
    ]
    if PHP:
        tasks.append(config_task('php -l refuses', path=good, settings={'dbpassword': {'__php_expr__': "getenv('A') getenv('B')"}}))
    results = run_tasks(tmp_path, [dict(task, ignore_errors=True) for task in tasks])

    messages = [result.get('msg', '') for result in results]
    assert all(result.get('failed') for result in results), results
    assert 'is not a config.php this module can edit' in messages[0]
    assert "does not start with '<?php'" in messages[0]
    assert 'line 4, column 15: unterminated single-quoted string' in messages[1]
    assert 'out of the 64-bit range' in messages[2]
    assert '__php_expr__ is empty' in messages[3]
    assert 'must have no other keys' in messages[4]
    assert "key 'debug' is both in settings and in remove" in messages[5]
    if PHP:
        assert 'php -l rejects the new content' in messages[6]
        assert 'syntax error' in messages[6]
    for path, content in snapshots.items():
        assert read(path) == content
        assert os.stat(path).st_mtime == OLD
    assert sorted(os.listdir(str(tmp_path))) == ['broken.php', 'config.php', 'playbook.yml', 'yaml.php']


def test_warnings_comments_and_expressions(tmp_path):
    commented = put_fixture(tmp_path, 'with_comments')
    expressions = put_fixture(tmp_path, 'with_expressions', target='expr.config.php')
    results = run_tasks(tmp_path, [
        config_task('typo', path=commented, settings={'memcache.disributed': '\\OC\\Memcache\\Redis'}),
        config_task('per node address', path=commented, merge=True, settings={'trusted_domains': {1: '10.0.0.21'}}),
        config_task('same expression', path=expressions, settings={'dbpassword': {'__php_expr__': "getenv('NC_TEST_ENV')"}}),
        config_task('keep expressions', path=expressions, settings={'loglevel': 1}),
    ])
    typo, node, same, keep = results
    assert typo['changed'] is True
    assert ("config key 'memcache.disributed' is not a known Nextcloud config key; did you mean 'memcache.distributed'?"
            in typo['warnings'])
    assert node['changed'] is True
    text = read(commented).decode()
    assert "    1 => '10.0.0.21',\n" in text
    assert '  // Both names of this node; web2 has its own address at 1.\n' in text
    assert "  'datadirectory' => '/srv/ncdata', // shared storage\n" in text
    assert same['changed'] is False
    assert keep['changed'] is True
    text = read(expressions).decode()
    assert "  'dbpassword' => getenv('NC_TEST_ENV'),\n" in text
    assert "    'failover_mode' => \\RedisCluster::FAILOVER_ERROR,\n" in text
    assert "  'logfilemode' => 0640,\n" in text
    assert text.endswith("  'loglevel' => 1,\n);\n?>\n")
