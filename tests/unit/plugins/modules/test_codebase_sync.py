# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the codebase_sync module, run as a real process on local directories.

A fake ``ssh`` on PATH plays the master: it runs the export program the role ships
(roles/nc_sync/files/nc_sync_export.py) with SSH_ORIGINAL_COMMAND set, exactly as sshd does for a forced
command, or fails the way a real ssh fails (unreachable host, rejected key, connection cut half way).
"""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import scan_tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'codebase_sync.py')
EXPORT = os.path.join(ROOT, 'roles', 'nc_sync', 'files', 'nc_sync_export.py')
COLLECTIONS = os.path.join(ROOT, 'collections')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the module keeps owners, it must run as root')

FAKE_SSH = r'''#!%(python)s
import os, sys, subprocess
argv = sys.argv[1:]
with open(os.environ['FAKE_SSH_LOG'], 'a') as log:
    log.write(repr(argv) + '\n')
i = argv.index('--')
host, command = argv[i + 1], (argv[i + 2:] or [''])[0]
if host == 'unreachable':
    sys.stderr.write('ssh: connect to host unreachable port 22: Connection refused\n'); sys.exit(255)
if host == 'rejecting':
    sys.stderr.write('ncsync@rejecting: Permission denied (publickey).\n'); sys.exit(255)
env = dict(os.environ, SSH_ORIGINAL_COMMAND=command)
export = [%(python)r, %(export)r, '--allow-root', os.environ['FAKE_SSH_ALLOW']]
if host != 'dies':
    os.execve(export[0], export, env)
# 'dies': the connection breaks after some of the stream
p = subprocess.Popen(export, env=env, stdout=subprocess.PIPE)
left = int(os.environ.get('FAKE_SSH_CUT', '30000'))
while left > 0:
    chunk = os.read(p.stdout.fileno(), min(left, 4096))
    if not chunk:
        break
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    left -= len(chunk)
p.kill()
sys.stderr.write('Connection to dies closed by remote host.\n')
sys.exit(255)
'''


@pytest.fixture
def env(tmp_path):
    fakebin = tmp_path / 'bin'
    fakebin.mkdir()
    ssh = fakebin / 'ssh'
    ssh.write_text(FAKE_SSH % {'python': sys.executable, 'export': EXPORT})
    ssh.chmod(0o755)
    key = tmp_path / 'id_ed25519'
    key.write_text('not a real key\n')
    key.chmod(0o600)
    master = tmp_path / 'master'
    node = tmp_path / 'node'
    master.mkdir()
    node.mkdir()
    e = dict(os.environ)
    e.update(PATH='%s:%s' % (fakebin, e.get('PATH', '/usr/bin:/bin')), PYTHONPATH=COLLECTIONS,
             FAKE_SSH_LOG=str(tmp_path / 'ssh.log'), FAKE_SSH_ALLOW=str(master))
    return {'env': e, 'key': str(key), 'master': master, 'node': node, 'tmp': tmp_path}


def run_module(env, check=False, diff=False, **args):
    params = dict(src_host='master', ssh_key=env['key'], ssh_user='ncsync',
                  src_path=str(env['master'] / 'nextcloud'), dest_path=str(env['node'] / 'nextcloud'))
    params.update(args)
    params.update(_ansible_check_mode=check, _ansible_diff=diff, _ansible_tmpdir=str(env['tmp']),
                  _ansible_remote_tmp=str(env['tmp']), _ansible_keep_remote_files=False)
    argsfile = env['tmp'] / 'args.json'
    argsfile.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
    proc = subprocess.run([sys.executable, MODULE, str(argsfile)], env=env['env'], capture_output=True,
                          text=True, timeout=120, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('module output is not JSON: %s %s' % (proc.stdout, proc.stderr))


def make_release(root, files=60):
    """A small tree shaped like a Nextcloud release, owned by uid/gid 33 like www-data."""
    for d in ('apps/files/lib', 'apps/dav/appinfo', 'core/js', 'config', 'lib/private', 'data/admin/files'):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / 'core' / 'js' / ('f%03d.js' % i)).write_text('x' * (i * 37))
    (root / 'apps/files/lib/App.php').write_text('<?php // files\n')
    (root / 'apps/dav/appinfo/info.xml').write_text('<info/>\n')
    (root / 'index.php').write_text('<?php require "lib/base.php";\n')
    (root / 'config/config.php').write_text("<?php $CONFIG = ['trusted_domains' => ['web1']];\n")
    (root / 'data/admin/files/master.txt').write_text('data of the master')
    os.symlink('core/js', str(root / 'jslink'))
    (root / 'config/config.php').chmod(0o640)
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames + ['.']:
            os.lchown(os.path.join(dirpath, name), 33, 33)
    os.utime(str(root / 'index.php'), (1600000000, 1600000000))


def manifest(path, exclude=()):
    return scan_tree(str(path), parse_patterns(list(exclude)))


def snapshot(path):
    """Everything about a tree, including inode numbers (to prove it was not touched)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, str(path))] = (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)
    return out


EXCLUDE = ['data/', 'config/node.config.php']


def test_first_sync_copies_everything_but_exclusions(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    r = run_module(env, exclude=EXCLUDE)
    assert r.get('failed') is not True, r
    assert r['changed'] is True and r['method'] == 'full'
    dest = env['node'] / 'nextcloud'
    assert manifest(dest, EXCLUDE) == manifest(src, EXCLUDE)
    assert not (dest / 'data').exists()
    assert os.lstat(str(dest / 'config/config.php')).st_uid == 33
    assert r['files_changed'] == len(manifest(src, EXCLUDE))
    assert r['bytes_transferred'] > 0
    assert not [n for n in os.listdir(str(env['node'])) if 'codebase_sync-staging' in n]


def test_second_run_is_a_noop_and_touches_nothing(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    assert run_module(env, exclude=EXCLUDE)['changed'] is True
    before = snapshot(env['node'])
    r = run_module(env, exclude=EXCLUDE)
    assert r['changed'] is False and r['files_changed'] == 0 and r['method'] == 'none'
    after = snapshot(env['node'])
    # the tree is untouched; the only addition is the base for the next sync (there was no previous tree
    # after the first sync): a hard-linked copy of the tree, sharing every file
    prepared = {k: v for k, v in after.items() if k.startswith('nextcloud.previous')}
    assert {k: v for k, v in after.items() if k not in prepared} == before
    for rel, (ino, mode, _size, _mtime) in prepared.items():
        if rel != 'nextcloud.previous' and not os.path.isdir(str(env['node'] / rel)):
            assert (ino, mode) == before['nextcloud' + rel[len('nextcloud.previous'):]][:2]
    assert manifest(env['node'] / 'nextcloud.previous', EXCLUDE) == manifest(env['node'] / 'nextcloud', EXCLUDE)
    # from then on, a no-op run changes nothing at all
    before = snapshot(env['node'])
    assert run_module(env, exclude=EXCLUDE)['changed'] is False
    assert snapshot(env['node']) == before


def test_incremental_sync_swaps_and_keeps_previous_and_local_files(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    dest = env['node'] / 'nextcloud'
    run_module(env, exclude=EXCLUDE)
    # node-local state that must survive: an excluded file and an excluded directory
    (dest / 'config/node.config.php').write_text("<?php $CONFIG = ['x' => 1];\n")
    (dest / 'data/n').mkdir(parents=True)
    (dest / 'data/n/local.txt').write_text('node data')
    live_index_ino = os.stat(str(dest / 'index.php')).st_ino
    # change on the master: new app, changed config, deleted file, changed mode
    (src / 'apps/newapp/lib').mkdir(parents=True)
    for i in range(5):
        (src / 'apps/newapp/lib' / ('c%d.php' % i)).write_text('<?php %d' % i)
    (src / 'config/config.php').write_text("<?php $CONFIG = ['trusted_domains' => ['web1'], 'ldap' => 1];\n")
    os.unlink(str(src / 'core/js/f000.js'))
    (src / 'core/js/f001.js').chmod(0o600)
    r = run_module(env, exclude=EXCLUDE, diff=True)
    assert r['changed'] is True and r['method'] == 'incremental', r
    assert manifest(dest, EXCLUDE) == manifest(src, EXCLUDE)
    assert (dest / 'config/node.config.php').read_text() == "<?php $CONFIG = ['x' => 1];\n"
    assert (dest / 'data/n/local.txt').read_text() == 'node data'
    assert not (dest / 'core/js/f000.js').exists()
    # only changed entries were transferred: 1 dir + 1 lib dir + 5 files + config + f001 (+ apps dir mtime not compared)
    assert r['files_changed'] == 2 + 5 + 1 + 1 + 1
    assert '+ apps/newapp/lib/c0.php' in r['changed_paths'] and '- core/js/f000.js' in r['changed_paths']
    assert '~ config/config.php' in r['diff']['prepared']
    # the previous tree is kept and still holds the old files; unchanged files are shared (hard links)
    prev = r['previous_path']
    assert prev == str(dest) + '.previous'
    assert os.path.exists(os.path.join(prev, 'core/js/f000.js'))
    assert "ldap" not in open(os.path.join(prev, 'config/config.php')).read()
    assert os.stat(os.path.join(prev, 'index.php')).st_ino == live_index_ino == os.stat(str(dest / 'index.php')).st_ino
    # the changed file is a new inode: the old tree was never written through a hard link
    assert os.stat(os.path.join(prev, 'config/config.php')).st_ino != os.stat(str(dest / 'config/config.php')).st_ino
    assert not os.path.exists(os.path.join(prev, 'data'))     # moved into the new tree, not copied
    assert run_module(env, exclude=EXCLUDE)['changed'] is False


def test_check_mode_reports_without_changing(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    run_module(env, exclude=EXCLUDE)
    (src / 'config/config.php').write_text('<?php $CONFIG = [];\n')
    before = snapshot(env['node'])
    r = run_module(env, check=True, diff=True, exclude=EXCLUDE)
    assert r['changed'] is True and r['files_changed'] == 1
    assert r['changed_paths'] == ['~ config/config.php']
    assert snapshot(env['node']) == before


def test_check_mode_on_empty_node(env):
    make_release(env['master'] / 'nextcloud')
    r = run_module(env, check=True, exclude=EXCLUDE)
    assert r['changed'] is True and r['files_changed'] > 60
    assert os.listdir(str(env['node'])) == []


def test_symlinked_dest_replaces_the_real_folder(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    real = env['node'] / 'nextcloud-32.0.2'
    real.mkdir()
    (real / 'old.php').write_text('old')
    os.symlink('nextcloud-32.0.2', str(env['node'] / 'nextcloud'))
    r = run_module(env, exclude=EXCLUDE, keep_previous=False)
    assert r['changed'] is True and r['dest_real_path'] == str(real)
    assert os.path.islink(str(env['node'] / 'nextcloud'))
    assert (real / 'index.php').exists() and not (real / 'old.php').exists()
    assert r['previous_path'] is None
    expected = ['.nextcloud-32.0.2.codebase_sync.lock', 'nextcloud', 'nextcloud-32.0.2']
    assert sorted(os.listdir(str(env['node']))) == expected


def _assert_untouched_failure(env, before, r, fragment):
    assert r.get('failed') is True, r
    assert fragment in r['msg'], r['msg']
    assert r['changed'] is False
    after = snapshot(env['node'])
    after = {k: v for k, v in after.items() if not k.endswith('.codebase_sync.lock')}
    assert after == before


@pytest.mark.parametrize('host, fragment', [
    ('unreachable', 'cannot reach the master'),
    ('rejecting', 'rejected the sync key'),
])
def test_ssh_failures_leave_the_target_alone(env, host, fragment):
    src = env['master'] / 'nextcloud'
    make_release(src)
    run_module(env, exclude=EXCLUDE)
    (src / 'index.php').write_text('<?php // new\n')
    before = {k: v for k, v in snapshot(env['node']).items() if not k.endswith('.codebase_sync.lock')}
    _assert_untouched_failure(env, before, run_module(env, src_host=host, exclude=EXCLUDE), fragment)


def test_missing_src_path(env):
    make_release(env['master'] / 'nextcloud')
    run_module(env)
    before = {k: v for k, v in snapshot(env['node']).items() if not k.endswith('.codebase_sync.lock')}
    r = run_module(env, src_path=str(env['master'] / 'nope'))
    _assert_untouched_failure(env, before, r, 'src_path does not exist on the master')


def test_src_outside_allowed_root_is_refused(env):
    make_release(env['master'] / 'nextcloud')
    r = run_module(env, src_path='/usr/share/doc')
    assert r.get('failed') is True and 'refused the request' in r['msg']
    assert os.listdir(str(env['node'])) == ['.nextcloud.codebase_sync.lock']


@pytest.mark.parametrize('dest', ['/', '', '/var/www', '/etc', 'relative'])
def test_bad_dest_path(env, dest):
    make_release(env['master'] / 'nextcloud')
    r = run_module(env, dest_path=dest)
    assert r.get('failed') is True
    assert 'dest_path' in r['msg']
    # nothing was even attempted over ssh
    assert not os.path.exists(env['env']['FAKE_SSH_LOG'])


@pytest.mark.parametrize('first', [True, False])
def test_connection_cut_half_way_leaves_old_tree_then_next_sync_completes(env, first):
    src = env['master'] / 'nextcloud'
    make_release(src, files=200)
    dest = env['node'] / 'nextcloud'
    if not first:
        run_module(env)
        for i in range(200):
            (src / 'core' / 'js' / ('f%03d.js' % i)).write_text('y' * (i * 50 + 1))
    before = {k: v for k, v in snapshot(env['node']).items() if not k.endswith('.codebase_sync.lock')}
    r = run_module(env, src_host='dies')
    _assert_untouched_failure(env, before, r, 'cannot reach the master')
    assert first is not dest.exists()
    # the next sync (connection fine again) completes
    r = run_module(env)
    assert r['changed'] is True
    assert manifest(dest) == manifest(src)


def test_stale_staging_from_a_killed_run_is_removed(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    run_module(env, exclude=EXCLUDE)
    stale = env['node'] / '.nextcloud.codebase_sync-staging'
    (stale / 'half').mkdir(parents=True)
    (src / 'index.php').write_text('<?php // 2\n')
    r = run_module(env, exclude=EXCLUDE)
    assert r['changed'] is True and not stale.exists()


def test_excluded_dir_left_in_old_tree_by_a_crash_is_recovered(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    run_module(env, exclude=EXCLUDE)
    dest = env['node'] / 'nextcloud'
    prev = env['node'] / 'nextcloud.previous'
    prev.mkdir()
    (prev / 'data/admin').mkdir(parents=True)
    (prev / 'data/admin/precious').write_text('1')
    r = run_module(env, exclude=EXCLUDE)
    assert (dest / 'data/admin/precious').read_text() == '1'
    assert 'moved data back' in json.dumps(r.get('warnings')), r


def test_ssh_is_called_with_pinned_host_keys(env):
    make_release(env['master'] / 'nextcloud')
    run_module(env, known_hosts='/etc/nextcloud-sync/known_hosts', ssh_port=2200)
    with open(env['env']['FAKE_SSH_LOG']) as f:
        calls = [eval(line) for line in f]   # noqa: S307 - our own repr() output
    assert calls
    for argv in calls:
        assert 'StrictHostKeyChecking=yes' in argv and 'UserKnownHostsFile=/etc/nextcloud-sync/known_hosts' in argv
        assert argv[argv.index('-p') + 1] == '2200'


def test_steady_state_recycles_the_previous_tree(env):
    src = env['master'] / 'nextcloud'
    make_release(src)
    dest = env['node'] / 'nextcloud'
    prev = env['node'] / 'nextcloud.previous'
    run_module(env, exclude=EXCLUDE)
    (dest / 'config/node.config.php').write_text('node v1')
    (src / 'index.php').write_text('<?php // v2\n')
    r2 = run_module(env, exclude=EXCLUDE)
    assert r2['staging_from'] == 'linked-copy'
    v2_config_ino = os.stat(str(dest / 'config/config.php')).st_ino
    # third state: an app, a removal, a mode change; the previous tree (state 1) becomes the new tree
    (src / 'apps/third/lib').mkdir(parents=True)
    (src / 'apps/third/lib/A.php').write_text('<?php // a\n')
    os.unlink(str(src / 'core/js/f002.js'))
    (src / 'core/js/f003.js').chmod(0o600)
    (dest / 'config/node.config.php').write_text('node v2')      # written in place, as Nextcloud does
    (dest / 'data/x').mkdir(parents=True)
    (dest / 'data/x/keep').write_text('keep')
    r3 = run_module(env, exclude=EXCLUDE, diff=True)
    assert r3['changed'] is True and r3['staging_from'] == 'previous', r3
    assert manifest(dest, EXCLUDE) == manifest(src, EXCLUDE)
    assert (dest / 'index.php').read_text() == '<?php // v2\n'     # state 1's copy was replaced
    assert (dest / 'config/node.config.php').read_text() == 'node v2'
    assert (dest / 'data/x/keep').read_text() == 'keep'
    # the tree of state 2 is now the previous one, and still shares the unchanged files
    assert (prev / 'core/js/f002.js').exists() and not (prev / 'apps/third').exists()
    assert os.stat(str(prev / 'config/config.php')).st_ino == v2_config_ino == os.stat(str(dest / 'config/config.php')).st_ino
    assert r3['files_changed'] == 3 + 1 + 1   # apps/third, its lib and A.php; f002 removed; f003 mode
    assert run_module(env, exclude=EXCLUDE)['changed'] is False
