# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the pure parts of codebase_sync: patterns, manifest, diff and command building."""

import os
import shlex
import subprocess
import sys

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils import codebase_sync as cs


# -- exclusion patterns -----------------------------------------------------------------------

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
    assert cs.is_excluded(path, is_dir, cs.parse_patterns([pattern])) is expected


def test_root_is_never_excluded():
    assert not cs.is_excluded('.', True, cs.parse_patterns(['**/x']))


@pytest.mark.parametrize('pattern', ['', '   ', '/', '.', './', '**', '**/**', 'a/../b', '..'])
def test_bad_patterns(pattern):
    with pytest.raises(ValueError):
        cs.parse_pattern(pattern)


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
    assert cs.may_contain_excluded(rel, cs.parse_patterns(patterns)) is expected


@pytest.mark.parametrize('rel', ['/etc/passwd', '../x', 'a/../../b', 'a//b', './a', 'a/./b', '', 'a/\0b'])
def test_check_relpath_rejects(rel):
    with pytest.raises(ValueError):
        cs.check_relpath(rel)


@pytest.mark.parametrize('rel', ['.', 'a', 'a/b c/d', 'apps/x.php', '.htaccess'])
def test_check_relpath_accepts(rel):
    assert cs.check_relpath(rel) == rel


# -- manifest -----------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'tree'
    (root / 'apps' / 'files').mkdir(parents=True)
    (root / 'config').mkdir()
    (root / 'data' / 'admin').mkdir(parents=True)
    (root / 'index.php').write_text('<?php\n')
    (root / 'apps' / 'files' / 'app.php').write_text('x' * 100)
    (root / 'config' / 'config.php').write_text('<?php $CONFIG = [];\n')
    (root / 'config' / 'node.config.php').write_text('<?php\n')
    (root / 'data' / 'admin' / 'f.txt').write_text('secret')
    os.symlink('apps/files', str(root / 'link'))
    os.utime(str(root / 'index.php'), (1000000000, 1000000000))
    return root


def test_scan_tree_entries(tree):
    m = cs.scan_tree(str(tree), [])
    assert set(m) == {'.', 'apps', 'apps/files', 'apps/files/app.php', 'config', 'config/config.php',
                      'config/node.config.php', 'data', 'data/admin', 'data/admin/f.txt', 'index.php', 'link'}
    st = os.lstat(str(tree / 'index.php'))
    assert m['index.php'] == 'f %o %d %d 6 1000000000' % (st.st_mode & 0o7777, st.st_uid, st.st_gid)
    assert m['link'] == 'l %d %d apps/files' % (st.st_uid, st.st_gid)
    assert m['apps'].startswith('d ') and len(m['apps'].split()) == 4   # directory mtimes and sizes are not compared


def test_scan_tree_exclusion_prunes_and_reports(tree):
    seen = []
    m = cs.scan_tree(str(tree), cs.parse_patterns(['data/', 'config/node.config.php']),
                     on_excluded=lambda rel, is_dir: seen.append((rel, is_dir)))
    assert not any(p == 'data' or p.startswith('data/') for p in m)
    assert 'config/node.config.php' not in m and 'config/config.php' in m
    assert sorted(seen) == [('config/node.config.php', False), ('data', True)]


def _odd_tree(tmp_path):
    root = tmp_path / 'odd'
    (root / 'd[1]*').mkdir(parents=True)
    odd = os.fsdecode(b'caf\xc3\xa9 \xff\tname\nx')   # UTF-8, an undecodable byte, tab, newline
    (root / odd).write_text('1')
    (root / 'd[1]*' / 'f?').write_text('22')
    os.chmod(str(root / 'd[1]*'), 0o1750)
    os.chmod(str(root / 'd[1]*' / 'f?'), 0o4640)
    os.symlink('target with spaces', str(root / 'sl'))
    os.mkfifo(str(root / 'fifo'))
    os.utime(str(root / 'fifo'), (5, 5))
    os.utime(str(root / odd), ns=(1, 1999999999))           # 1.999... s: whole seconds, rounded down
    return root


@pytest.mark.parametrize('patterns', [[], ['d*/f?'], ['**/f?']])
def test_find_and_python_walk_give_identical_manifests(tmp_path, patterns):
    root = _odd_tree(tmp_path)
    parsed = cs.parse_patterns(patterns)
    by_find, excluded = cs.tree_manifest(str(root), parsed)
    assert by_find == cs.scan_tree(str(root), parsed)
    odd = os.fsdecode(b'caf\xc3\xa9 \xff\tname\nx')
    assert by_find[odd].endswith(' 1 1')                     # size 1, mtime 1
    assert by_find['fifo'].startswith('p 644 ') and by_find['fifo'].endswith(' 5')
    assert by_find['sl'].endswith(' target with spaces')
    if patterns:
        assert 'd[1]*/f?' not in by_find and excluded == [('d[1]*/f?', False)]
    else:
        assert by_find['d[1]*/f?'].startswith('f 4640 ') and by_find['d[1]*'].startswith('d 1750 ')


def test_tree_manifest_falls_back_to_python_when_exclusions_are_many(tmp_path, monkeypatch):
    root = _odd_tree(tmp_path)
    monkeypatch.setattr(cs.excluded_entries, '__defaults__', (0, False))
    monkeypatch.setattr(cs, 'run_find', lambda *a: pytest.fail('find must not run'))
    m, excluded = cs.tree_manifest(str(root), cs.parse_patterns(['**/f?']), find_bin='false')
    assert 'd[1]*/f?' not in m and excluded == [('d[1]*/f?', False)]


def test_tree_manifest_fails_on_unreadable_tree(tmp_path):
    with pytest.raises(OSError):
        cs.tree_manifest(str(tmp_path / 'missing'), [])
    with pytest.raises(OSError, match='find failed'):
        cs.tree_manifest(str(tmp_path), [], find_bin='false')


# -- the master's walk split over several find processes ------------------------------------------

def _wide_tree(tmp_path):
    """Enough second-level entries to split the walk; odd names, a FIFO and symlinks; excluded paths at
    the first, second and third level."""
    root = _odd_tree(tmp_path)
    for top in ('apps', 'core', '3rdparty'):
        for i in range(5):
            d = root / top / ('e%d' % i) / 'sub'
            d.mkdir(parents=True)
            (d / 'f.php').write_text(str(i))
        (root / top / 'top file.txt').write_text('t')
        os.symlink('e0', str(root / top / 'lnk'))
    for name in ('-delete', '(', '!', ',', '-exec', 'g*[1]?'):      # start points 'apps/-delete', ...
        (root / 'apps' / name).write_text(name)
    (root / 'apps' / 'e1' / 'data').mkdir()
    (root / 'apps' / 'e1' / 'data' / 'secret').write_text('s')
    (root / 'data' / 'x').mkdir(parents=True)
    (root / 'config').mkdir()
    (root / 'config' / 'node.config.php').write_text('n')
    (root / 'config' / 'config.php').write_text('c')
    return root


@pytest.fixture
def many_cpus(monkeypatch):
    monkeypatch.setattr(cs.os, 'cpu_count', lambda: 8)


def _pairs(data):
    """find's output as a sorted list of (path, attrs): a path printed twice shows."""
    items = data.split(b'\0')[:-1]
    return sorted(zip(items[0::2], items[1::2]))


def _no_single_find(monkeypatch):
    monkeypatch.setattr(cs, 'run_find', lambda *a: pytest.fail('the walk was not split'))


@pytest.mark.parametrize('exclude', [[], ['data/', 'config/node.config.php', 'apps/e1/data/', 'core/e2/']])
def test_split_walk_gives_what_one_find_gives(tmp_path, many_cpus, monkeypatch, exclude):
    root = str(_wide_tree(tmp_path))
    excluded = cs.excluded_entries(root, cs.parse_patterns(exclude))
    plan = cs.split_walk(root, excluded, 3)
    assert len(plan) == 3
    points = [p for group in plan for p in group]
    assert len(points) == len(set(points)) and 'apps/e0' in points and 'config/config.php' in points
    assert not set(points) & set(excluded)
    single = cs.run_find('find', root, excluded)
    one = cs.parse_pairs(single)
    _no_single_find(monkeypatch)
    assert _pairs(cs.run_finds('find', root, excluded, jobs=3)) == _pairs(single)
    assert cs._complete_others(root, one) == cs.scan_tree(root, cs.parse_patterns(exclude))
    if exclude:
        assert not [p for p in one if p.startswith(('data', 'apps/e1/data', 'core/e2')) or p.endswith('node.config.php')]


def test_split_walk_declines_what_find_would_misread_or_not_gain_from(tmp_path, many_cpus, monkeypatch):
    root = _wide_tree(tmp_path)
    assert cs.split_walk(str(root), [], 1) is None                     # one job
    assert cs.split_walk(str(root), [], 50) is None                    # fewer entries than two per job
    monkeypatch.setattr(cs, 'MAX_FIND_START_POINTS', 5)
    assert cs.split_walk(str(root), [], 2) is None                     # too many names
    monkeypatch.setattr(cs, 'MAX_FIND_START_POINTS', 4096)
    monkeypatch.setattr(cs, 'MAX_FIND_START_BYTES', 100)
    assert cs.split_walk(str(root), [], 2) is None                     # too many bytes for argv
    monkeypatch.setattr(cs, 'MAX_FIND_START_BYTES', 64 * 1024)
    assert cs.split_walk(str(root), [], 2) is not None
    (root / '-delete').mkdir()
    (root / '-delete' / 'a').write_text('a')
    assert cs.split_walk(str(root), [], 2) is None                     # find would read it as an action
    single = cs.run_find('find', str(root), [])
    calls = []
    monkeypatch.setattr(cs, 'run_find', lambda *a: calls.append(a) or single)
    assert cs.run_finds('find', str(root), [], jobs=2) == single and len(calls) == 1


def test_split_walk_fails_when_one_find_fails(tmp_path, many_cpus):
    root = _wide_tree(tmp_path)
    # a find that works for the root's own listing (-maxdepth 1) and fails for the second-level walks
    fake = tmp_path / 'find'
    fake.write_text('#!/bin/sh\ncase "$*" in *maxdepth*) exec find "$@";; esac\necho walk broke >&2\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(OSError, match=r'find failed \(exit 3\): walk broke'):
        cs.run_finds(str(fake), str(root), [], jobs=2)


def test_split_walk_fails_when_find_cannot_start(tmp_path, many_cpus):
    with pytest.raises(OSError):
        cs.run_finds(str(tmp_path / 'no-such-find'), str(_wide_tree(tmp_path)), [], jobs=2)


def test_export_manifest_of_a_split_walk_matches_local_scan(tmp_path, many_cpus, monkeypatch):
    root = _wide_tree(tmp_path)
    _no_single_find(monkeypatch)
    rc, data = _export(tmp_path, cs.export_request('manifest', str(root), ['data/']), allow=[str(tmp_path)])
    assert rc == 0
    assert cs.decode_manifest(data.split(b'\n', 1)[1]) == cs.scan_tree(str(root), cs.parse_patterns(['data/']))


def test_manifest_roundtrip_with_odd_names(tmp_path):
    m = cs.scan_tree(str(_odd_tree(tmp_path)), [])
    assert cs.decode_manifest(cs.encode_manifest(m)) == m


def test_decode_manifest_rejects_garbage():
    with pytest.raises(cs.SyncError):
        cs.decode_manifest(b'not pairs')
    with pytest.raises(cs.SyncError, match='without the tree'):
        cs.decode_manifest(b'a\0f 420 0 0 1 1\0')
    with pytest.raises(cs.SyncError):
        cs.parse_manifest_header(b'{"v": 1}\n')
    with pytest.raises(cs.SyncError):
        cs.parse_manifest_header(b'codebase_sync-manifest 2 10\n')     # an older export program
    assert cs.parse_manifest_header(cs.manifest_header(1234)) == 1234


def test_diff_manifests_rejects_bad_paths_and_entries_from_the_master():
    dest = {'.': 'd 755 0 0'}
    for rel, attrs in (('../etc/passwd', 'f 420 0 0 1 1'), ('/etc/passwd', 'f 420 0 0 1 1'),
                       ('a//b', 'f 420 0 0 1 1'), ('a', 'x 420 0 0 1 1'), ('a', '')):
        with pytest.raises(cs.SyncError):
            cs.diff_manifests({'.': 'd 755 0 0', rel: attrs}, dest)
    assert cs.diff_manifests({'.': 'd 755 0 0', 'a b': 'f 420 0 0 1 2'}, dest) == (['a b'], [])


def _e(kind='f', mode=0o644, size=1, mtime=1, uid=33, gid=33, link=''):
    if kind == 'd':
        return 'd %o %d %d' % (mode, uid, gid)
    if kind == 'l':
        return 'l %d %d %s' % (uid, gid, link)
    return 'f %o %d %d %d %d' % (mode, uid, gid, size, mtime)


def test_diff_manifests_detects_every_attribute():
    base = {'.': _e('d', 0o755), 'a': _e(), 'b': _e(), 'c': _e(), 'd': _e(), 'e': _e(), 'l': _e('l', 0, link='x'),
            'same': _e()}
    src = dict(base)
    src.update({'a': _e(size=2), 'b': _e(mtime=2), 'c': _e(mode=0o600), 'd': _e(uid=0), 'e': _e(gid=0),
                'l': _e('l', 0, link='y'), 'new': _e()})
    dest = dict(base)
    dest['gone'] = _e()
    changed, removed = cs.diff_manifests(src, dest)
    assert changed == ['a', 'b', 'c', 'd', 'e', 'l', 'new']
    assert removed == ['gone']


def test_diff_identical_is_empty(tree):
    m = cs.scan_tree(str(tree), [])
    assert cs.diff_manifests(m, dict(m)) == ([], [])


def test_paths_to_clear_never_keeps_shared_inodes():
    src = {'.': _e('d'), 'f': _e(size=2), 'dirmode': _e('d', 0o700), 'became_file': _e(), 'new': _e()}
    dest = {'.': _e('d', 0o700), 'f': _e(), 'dirmode': _e('d', 0o755), 'became_file': _e('d'),
            'became_file/x': _e(), 'gone': _e()}
    changed, removed = cs.diff_manifests(src, dest)
    out = cs.paths_to_clear(changed, removed, src, dest)
    # changed file is deleted (not written through the hard link), directory whose mode changed is kept,
    # a directory that became a file is deleted, children before parents, the root never
    assert out == ['gone', 'f', 'became_file/x', 'became_file']


def test_describe_changes_is_bounded():
    src = {'p%03d' % i: _e() for i in range(10)}
    lines = cs.describe_changes(sorted(src), ['old'], src, {'p000': _e(size=9)}, limit=4)
    assert lines == ['- old', '~ p000', '+ p001', '+ p002', '... and 7 more']


# -- command building ---------------------------------------------------------------------------

def test_ssh_argv_pins_host_keys_and_quotes_remote_words():
    remote = cs.export_request('manifest', "/var/www/next cloud; rm -rf /", ['data/', "it's"])
    argv = cs.ssh_argv('/usr/bin/ssh', 'web1', 'ncsync', '/etc/k', remote, port=2222,
                       known_hosts='/etc/nextcloud-sync/known_hosts', connect_timeout=7)
    assert argv[0] == '/usr/bin/ssh'
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == '-o']
    assert 'StrictHostKeyChecking=yes' in opts and 'BatchMode=yes' in opts and 'IdentitiesOnly=yes' in opts
    assert 'UserKnownHostsFile=/etc/nextcloud-sync/known_hosts' in opts
    assert 'ConnectTimeout=7' in opts
    assert not any('StrictHostKeyChecking=no' in a for a in argv)
    assert argv[argv.index('-p') + 1] == '2222' and argv[argv.index('-i') + 1] == '/etc/k'
    assert argv[-3:-1] == ['--', 'web1']
    # the server splits the one command string back into exactly the words that were sent
    assert shlex.split(argv[-1]) == remote
    assert remote == ['nc-sync-export', 'manifest', '/var/www/next cloud; rm -rf /',
                      '--exclude', 'data/', '--exclude', "it's"]


def test_host_cannot_inject_options():
    argv = cs.ssh_argv('ssh', '-oProxyCommand=x', 'u', 'k', ['nc-sync-export'])
    assert argv.index('--') < argv.index('-oProxyCommand=x')


def test_extract_argv_preserves_ownership():
    argv = cs.extract_argv('/bin/tar', '/var/www/.nc.staging')
    assert argv[:6] == ['/bin/tar', '-x', '-f', '-', '-C', '/var/www/.nc.staging']
    for opt in ('--numeric-owner', '--same-owner', '--same-permissions', '--totals'):
        assert opt in argv
    assert cs.extract_argv('tar', '/x', index_file='/t/i')[-2:] == ['-v', '--index-file=/t/i']


def test_archive_argv_takes_names_from_stdin_without_recursion():
    argv = cs.archive_argv('tar', '/srv/tree')
    assert argv[:6] == ['tar', '-c', '-f', '-', '-C', '/srv/tree']
    for opt in ('--null', '--no-recursion', '--files-from=-', '--numeric-owner'):
        assert opt in argv


def test_parse_helpers():
    assert cs.parse_tar_totals('Total bytes read: 10240 (10KiB, 1.2MiB/s)\n') == 10240
    assert cs.parse_tar_totals('') == 0


@pytest.mark.parametrize('rc, err, fragment', [
    (255, 'Permission denied (publickey).', 'rejected the sync key'),
    (255, 'Host key verification failed.', 'not pinned'),
    (255, 'ssh: connect to host web1 port 22: Connection refused', 'cannot reach the master'),
    (cs.EXPORT_NO_SOURCE, 'nc-sync-export: /x does not exist', 'src_path does not exist'),
    (cs.EXPORT_FORBIDDEN, 'outside the allowed roots', 'refused the request'),
    (127, 'command not found', 'not installed'),
])
def test_explain_ssh_failure(rc, err, fragment):
    assert fragment in cs.explain_ssh_failure(rc, err, 'web1', 'ncsync')


@pytest.mark.parametrize('path', ['', '   ', 'relative/path', '/', '//', '/var/www', '/var/www/', '/etc', '/usr/../etc'])
def test_validate_abs_path_refuses(path):
    with pytest.raises(cs.SyncError):
        cs.validate_abs_path(path, 'dest_path')


def test_validate_abs_path_normalises():
    assert cs.validate_abs_path('/var/www/nextcloud/', 'dest_path') == '/var/www/nextcloud'


# -- the export program -------------------------------------------------------------------------

def _export(tmp_path, request, allow=None, stdin=b''):
    out = tmp_path / 'out.bin'
    with open(str(out), 'wb') as f:
        args = []
        for a in allow or []:
            args += ['--allow-root', a]
        import io
        rc = cs.export_main(args, {'SSH_ORIGINAL_COMMAND': ' '.join(shlex.quote(w) for w in request)},
                            stdin=io.BytesIO(stdin), stdout=f)
    return rc, out.read_bytes()


def test_export_manifest_matches_local_scan(tree, tmp_path):
    rc, data = _export(tmp_path, cs.export_request('manifest', str(tree), ['data/']), allow=[str(tmp_path)])
    assert rc == 0
    local = cs.scan_tree(str(tree), cs.parse_patterns(['data/']))
    head, body = data.split(b'\n', 1)
    assert cs.parse_manifest_header(head + b'\n') == len(body)
    assert cs.decode_manifest(body) == local


def test_export_refuses_outside_allowed_roots(tree, tmp_path):
    rc, data = _export(tmp_path, cs.export_request('manifest', '/etc', []), allow=[str(tree)])
    assert rc == cs.EXPORT_FORBIDDEN and data == b''


def test_export_refuses_symlink_escape(tree, tmp_path):
    os.symlink('/etc', str(tree / 'escape'))
    rc, _data = _export(tmp_path, cs.export_request('manifest', str(tree / 'escape'), []), allow=[str(tree)])
    assert rc == cs.EXPORT_FORBIDDEN


def test_export_missing_source(tmp_path):
    rc, _data = _export(tmp_path, cs.export_request('tar', str(tmp_path / 'nope'), []), allow=[str(tmp_path)])
    assert rc == cs.EXPORT_NO_SOURCE


@pytest.mark.parametrize('request_words', [
    ['nc-sync-export'],
    ['nc-sync-export', 'shell', '/x'],
    ['nc-sync-export', 'manifest', '/x', '--rsh', 'y'],
    ['nc-sync-export', 'manifest', 'relative'],
])
def test_export_rejects_malformed_requests(tmp_path, request_words):
    rc, _data = _export(tmp_path, request_words)
    assert rc == cs.EXPORT_USAGE


def test_export_tar_list_refuses_escapes_and_excluded(tree, tmp_path):
    req = cs.export_request('tar-list', str(tree), ['data/'])
    assert _export(tmp_path, req, stdin=b'../../etc/passwd\0')[0] == cs.EXPORT_FORBIDDEN
    assert _export(tmp_path, req, stdin=b'data\0')[0] == cs.EXPORT_FORBIDDEN
    assert _export(tmp_path, req, stdin=b'data/admin/f.txt\0')[0] == cs.EXPORT_FORBIDDEN


def _members(data, tmp_path):
    path = tmp_path / 'a.tar'
    path.write_bytes(data)
    import tarfile
    with tarfile.open(str(path)) as t:
        return [m.name for m in t.getmembers()]


def _norm(name):
    return '.' if name in ('.', './') else (name[2:] if name.startswith('./') else name)


def test_export_tar_streams_the_tree_minus_exclusions(tree, tmp_path):
    rc, data = _export(tmp_path, cs.export_request('tar', str(tree), ['data/', 'config/node.config.php']))
    assert rc == 0
    names = [_norm(n) for n in _members(data, tmp_path)]
    assert names[0] == '.'
    assert set(names) == {'.', 'apps', 'apps/files', 'apps/files/app.php', 'config', 'config/config.php',
                          'index.php', 'link'}
    assert names.index('apps') < names.index('apps/files') < names.index('apps/files/app.php')


def test_excluded_entries_names_exact_paths_or_gives_up(tree):
    pats = cs.parse_patterns(['data/', 'config/node.config.php', 'apps/*/nothing-here'])
    assert cs.excluded_entries(str(tree), pats) == ['config/node.config.php', 'data']
    # a file called "data" is not a directory: data/ does not exclude it
    assert cs.excluded_entries(str(tree / 'apps'), cs.parse_patterns(['files/'])) == ['files']
    assert cs.excluded_entries(str(tree), cs.parse_patterns(['**/*.php']), limit=2) is None
    (tree / 'config' / 'odd\nname').write_text('x')
    assert cs.excluded_entries(str(tree), cs.parse_patterns(['config/odd*'])) is None


def test_tree_archive_argv_matches_exclusions_literally():
    argv = cs.tree_archive_argv('tar', '/srv/tree', ['data', 'config/[x]*.php'])
    assert argv[:6] == ['tar', '-c', '-f', '-', '-C', '/srv/tree']
    assert argv.index('--no-wildcards') < argv.index('--exclude=./data')
    assert '--anchored' in argv and '--exclude=./config/[x]*.php' in argv and argv[-2:] == ['--', '.']


@pytest.mark.parametrize('exclude', [['data/', 'config/node.config.php'], ['**/*.php']])
def test_export_tar_whole_tree_both_ways_gives_the_same_members(tree, tmp_path, exclude, monkeypatch):
    """tar's own walk (exact excludes) and the fed walk (too many exclusions) archive the same entries."""
    (tree / 'apps' / '[x]*').mkdir()
    (tree / 'apps' / '[x]*' / 'keep.txt').write_text('k')
    rc, data = _export(tmp_path, cs.export_request('tar', str(tree), exclude))
    assert rc == 0
    own = sorted(_norm(n) for n in _members(data, tmp_path))
    monkeypatch.setattr(cs.excluded_entries, '__defaults__', (0, False))
    rc, data = _export(tmp_path, cs.export_request('tar', str(tree), exclude))
    assert rc == 0
    fed = sorted(_norm(n) for n in _members(data, tmp_path))
    assert own == fed
    assert 'apps/[x]*/keep.txt' in own
    if exclude == ['**/*.php']:
        assert not any(n.endswith('.php') for n in own) and 'data/admin/f.txt' in own
    else:
        assert not any(n.startswith('data') for n in own) and 'config/config.php' in own


def test_export_tar_list_only_listed(tree, tmp_path):
    rc, data = _export(tmp_path, cs.export_request('tar-list', str(tree), []), stdin=b'config/config.php\0index.php\0')
    assert rc == 0
    assert _members(data, tmp_path) == ['config/config.php', 'index.php']


def test_export_tar_list_missing_file_fails(tree, tmp_path):
    rc, _data = _export(tmp_path, cs.export_request('tar-list', str(tree), []), stdin=b'vanished.php\0')
    assert rc == cs.EXPORT_FAILED


# -- target-side tree operations ------------------------------------------------------------------

def _run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def test_link_copy_shares_inodes_and_skips_excluded_dirs(tree, tmp_path):
    dst = str(tmp_path / 'staging')
    pats = cs.parse_patterns(['data/', 'config/node.config.php'])
    excluded = cs.link_copy(str(tree), dst, pats, _run)
    assert excluded == ['data']
    assert not os.path.exists(os.path.join(dst, 'data'))
    for rel in ('index.php', 'apps/files/app.php', 'config/config.php', 'config/node.config.php'):
        assert os.stat(os.path.join(dst, rel)).st_ino == os.stat(str(tree / rel)).st_ino
    assert os.readlink(os.path.join(dst, 'link')) == 'apps/files'
    # directories are new directories with the same metadata
    for rel in ('.', 'apps', 'config'):
        s, d = os.stat(str(tree / rel)), os.stat(os.path.join(dst, rel))
        assert s.st_ino != d.st_ino and s.st_mode == d.st_mode
    assert cs.scan_tree(dst, pats) == cs.scan_tree(str(tree), pats)


def test_safe_remove_tree_keeps_excluded_dirs(tree):
    left = cs.safe_remove_tree(str(tree), cs.parse_patterns(['data/']))
    assert left == ['data']
    assert os.path.exists(str(tree / 'data' / 'admin' / 'f.txt'))
    assert sorted(os.listdir(str(tree))) == ['data']


def test_safe_remove_tree_without_exclusions_removes_all(tree):
    assert cs.safe_remove_tree(str(tree), []) == []
    assert not os.path.exists(str(tree))


def test_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    (a / 'from_a').write_text('')
    if not cs.exchange(str(a), str(b)):
        pytest.skip('renameat2(RENAME_EXCHANGE) not available here')
    assert os.listdir(str(b)) == ['from_a'] and os.listdir(str(a)) == []


def test_export_tar_list_refuses_paths_through_symlinks(tree, tmp_path):
    os.symlink('/etc', str(tree / 'etclink'))
    req = cs.export_request('tar-list', str(tree), [])
    assert _export(tmp_path, req, stdin=b'etclink/passwd\0')[0] == cs.EXPORT_FORBIDDEN
    # the symlink itself may be listed (it is archived as a symlink)
    assert _export(tmp_path, req, stdin=b'etclink\0')[0] == 0


@pytest.mark.parametrize('rel, expected', [('data/admin/f.txt', True), ('data', False), ('datax', False)])
def test_is_excluded_path_checks_parents(rel, expected):
    assert cs.is_excluded_path(rel, False, cs.parse_patterns(['data/'])) is expected


def test_ssh_options_prefer_a_cheap_cipher_and_no_compression_without_dropping_defaults():
    argv = cs.ssh_argv('ssh', 'web1', 'ncsync', '/k', ['nc-sync-export'], known_hosts='/kh')
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == '-o']
    assert 'Compression=no' in opts and 'ControlMaster=no' in opts
    ciphers = [o for o in opts if o.startswith('Ciphers=')]
    assert ciphers == ['Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com']   # '^': ahead of the defaults


def _session(tmp_path, request, allow):
    """An ExportSession whose 'ssh' runs the export program locally (same stdin/stdout protocol)."""
    work = tmp_path / 'work'
    work.mkdir(exist_ok=True)
    argv = [sys.executable, cs.__file__]
    for a in allow:
        argv += ['--allow-root', a]
    return cs.ExportSession(argv + request[1:], str(work), 'web1', 'ncsync')


def test_session_manifest_then_only_the_asked_entries(tree, tmp_path):
    patterns = ['data/', 'config/node.config.php']
    s = _session(tmp_path, cs.export_request('sync', str(tree), patterns), [str(tmp_path)])
    try:
        src = cs.decode_manifest(s.read_manifest())
        assert src == cs.tree_manifest(str(tree), cs.parse_patterns(patterns))[0]
        s.request(['apps/files/app.php', 'index.php'])
        into = tmp_path / 'into'
        into.mkdir()
        assert s.extract(cs.extract_argv('tar', str(into))) > 0
    finally:
        s.close()
    assert sorted(p.relative_to(into).as_posix() for p in into.rglob('*')) == [
        'apps', 'apps/files', 'apps/files/app.php', 'index.php']
    assert os.stat(str(into / 'index.php')).st_mtime == 1000000000
    assert s.bytes > 0


def test_session_without_names_ends_cleanly(tree, tmp_path):
    s = _session(tmp_path, cs.export_request('sync', str(tree), []), [str(tmp_path)])
    try:
        s.read_manifest()
        s.end()
    finally:
        s.close()
    assert s.proc.returncode == 0


def test_session_explains_a_refusal(tree, tmp_path):
    s = _session(tmp_path, cs.export_request('sync', str(tmp_path / 'nope'), []), [str(tmp_path)])
    with pytest.raises(cs.SyncError, match='src_path does not exist'):
        s.read_manifest()
    s.close()
    s = _session(tmp_path, cs.export_request('sync', str(tree), ['data/']), [str(tmp_path)])
    s.read_manifest()
    s.request(['data/admin/f.txt'])
    with pytest.raises(cs.SyncError, match='refused the request'):
        s.extract(cs.extract_argv('tar', str(tmp_path)))
    s.close()


def test_session_fails_when_the_stream_breaks(tree, tmp_path):
    """An archive cut short (the export's tar killed) fails, whatever tar made of it."""
    work = tmp_path / 'work'
    work.mkdir()
    s = cs.ExportSession(['sh', '-c', 'head -c 3000 /dev/urandom; exit 70'], str(work), 'web1', 'ncsync', send=False)
    into = tmp_path / 'into'
    into.mkdir()
    with pytest.raises(cs.SyncError, match='exit 70'):
        s.extract(cs.extract_argv('tar', str(into)))
    s.close()
