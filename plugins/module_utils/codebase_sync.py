# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared code of the codebase_sync module and its export program.

Two sides use this file:

* the ``nextcloud_ha.cluster.codebase_sync`` module on a target web node
  (manifest, exclusion, diff, the argv of ssh and tar, the hard-linked
  staging copy);
* the master web node, where the ``nc_sync`` role installs this very file as
  the export program that the sync key is forced to run
  (``command="/usr/bin/python3 .../nc_sync_export.py --allow-root /var/www",restrict``).
  Running it as a script calls ``export_main()``. Both sides therefore compute
  the manifest with the same code, which is what makes the no-op check exact.

Only the standard library is used, so the file runs on the master without
Ansible. Everything except ``export_main()``, ``scan_tree()``,
``link_copy()`` and ``safe_remove_tree()`` is pure.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fnmatch
import os
import re
import shlex
import stat
import subprocess
import sys
import zlib

EXPORT_NAME = 'nc-sync-export'
MANIFEST_VERSION = 2

# Exit codes of the export program (also read by the module).
EXPORT_OK = 0
EXPORT_USAGE = 64          # malformed request
EXPORT_NO_SOURCE = 66      # src_path missing or not a directory
EXPORT_FORBIDDEN = 77      # src_path outside the allowed roots, or a bad listed path
EXPORT_FAILED = 70         # walking or archiving the tree failed

# dest_path values that are never a Nextcloud tree; refusing them protects the system.
FORBIDDEN_DEST = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/media', '/mnt', '/opt',
    '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/lib',
    '/usr/local', '/usr/sbin', '/usr/share', '/var', '/var/lib', '/var/log', '/var/www', '/var/tmp',
])

# Constant bash program that runs ``ssh ... | tar -x ...`` without any shell text built from input:
# every value arrives as a separate argv element. It reports the exit status of BOTH ends on
# stderr (PIPESTATUS), because a pipeline's own status is only that of its last command.
#   $1 = number of tar argv elements, $2 = file for ssh's stderr, then tar argv, then ssh argv.
PIPELINE_SCRIPT = r'''set -u
ntar=$1; errfile=$2; shift 2
tar_cmd=("${@:1:$ntar}")
shift "$ntar"
"$@" 2>"$errfile" | "${tar_cmd[@]}"
st=("${PIPESTATUS[@]}")
printf '\ncodebase_sync-pipeline ssh=%s tar=%s\n' "${st[0]}" "${st[1]}" >&2
[ "${st[0]}" -eq 0 ] && [ "${st[1]}" -eq 0 ]
'''

_STATUS_RE = re.compile(r'codebase_sync-pipeline ssh=(\d+) tar=(\d+)')
_TOTALS_RE = re.compile(r'Total bytes read: (\d+)')


class SyncError(Exception):
    """A failure with a message meant for the user."""


# ---------------------------------------------------------------------------------------------
# Exclusion patterns
# ---------------------------------------------------------------------------------------------

def parse_pattern(pattern):
    """Turn a user pattern into (components, dir_only).

    Patterns are relative to the tree root and anchored there. ``*``, ``?`` and ``[...]`` match
    within one path component; a component ``**`` matches any number of components (including
    none). A trailing ``/`` restricts the pattern to directories. A directory that matches is
    excluded with everything below it.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError('an exclude pattern must be a non-empty string')
    p = pattern.strip()
    dir_only = p.endswith('/')
    while p.startswith('./'):
        p = p[2:]
    p = p.strip('/')
    if not p or p == '.':
        raise ValueError('exclude pattern %r would exclude the whole tree' % pattern)
    parts = tuple(c for c in p.split('/') if c not in ('', '.'))
    if '..' in parts:
        raise ValueError('exclude pattern %r must not contain ".."' % pattern)
    if all(c == '**' for c in parts):
        raise ValueError('exclude pattern %r would exclude the whole tree' % pattern)
    return parts, dir_only


def parse_patterns(patterns):
    return [parse_pattern(p) for p in (patterns or [])]


def _match_parts(pat, parts):
    if not pat:
        return not parts
    if pat[0] == '**':
        return any(_match_parts(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    return fnmatch.fnmatchcase(parts[0], pat[0]) and _match_parts(pat[1:], parts[1:])


def _prefix_possible(pat, parts):
    """True when some path below the directory ``parts`` could match ``pat``."""
    if not parts:
        return bool(pat)
    if not pat:
        return False
    if pat[0] == '**':
        return True
    return fnmatch.fnmatchcase(parts[0], pat[0]) and _prefix_possible(pat[1:], parts[1:])


def is_excluded(relpath, is_dir, patterns):
    """Whether the entry ``relpath`` (relative, '/'-separated) is excluded by parsed ``patterns``."""
    if relpath in ('', '.'):
        return False
    parts = tuple(relpath.split('/'))
    for pat, dir_only in patterns:
        if dir_only and not is_dir:
            continue
        if _match_parts(pat, parts):
            return True
    return False


def is_excluded_path(relpath, is_dir, patterns):
    """Like is_excluded, but also true when any parent directory of ``relpath`` is excluded."""
    if relpath in ('', '.'):
        return False
    parts = relpath.split('/')
    for i in range(1, len(parts)):
        if is_excluded('/'.join(parts[:i]), True, patterns):
            return True
    return is_excluded(relpath, is_dir, patterns)


def may_contain_excluded(relpath, patterns):
    """Whether anything below the directory ``relpath`` could be excluded."""
    parts = () if relpath in ('', '.') else tuple(relpath.split('/'))
    return any(_prefix_possible(pat, parts) for pat, _dir_only in patterns)


def check_relpath(relpath):
    """Validate a relative path received from the other side; return it or raise ValueError."""
    if relpath == '.':
        return relpath
    if not relpath or relpath.startswith('/') or '\0' in relpath:
        raise ValueError('bad path %r' % relpath)
    parts = relpath.split('/')
    if any(p in ('', '.', '..') for p in parts):
        raise ValueError('bad path %r' % relpath)
    return relpath


# ---------------------------------------------------------------------------------------------
# Manifest: {relpath: (type, mode, uid, gid, size, mtime, link)}
# ---------------------------------------------------------------------------------------------

def entry_of(st, link=None):
    """Manifest entry of an lstat result.

    Directory mtimes are left out on purpose: they change whenever an entry is added or removed
    (carrying excluded paths over changes them) and they mean nothing to the application.
    Symlink modes and mtimes are not meaningful on Linux either.
    """
    m = st.st_mode
    if stat.S_ISREG(m):
        return ('f', stat.S_IMODE(m), st.st_uid, st.st_gid, st.st_size, int(st.st_mtime), '')
    if stat.S_ISDIR(m):
        return ('d', stat.S_IMODE(m), st.st_uid, st.st_gid, 0, 0, '')
    if stat.S_ISLNK(m):
        return ('l', 0, st.st_uid, st.st_gid, 0, 0, link or '')
    if stat.S_ISFIFO(m):
        return ('p', stat.S_IMODE(m), st.st_uid, st.st_gid, 0, int(st.st_mtime), '')
    if stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = 'c' if stat.S_ISCHR(m) else 'b'
        return (kind, stat.S_IMODE(m), st.st_uid, st.st_gid, st.st_rdev, int(st.st_mtime), '')
    return None   # sockets and the like: tar cannot carry them


class ScanCancelled(Exception):
    """scan_tree was told to stop."""


_S_IFMT, _S_IFREG, _S_IFDIR, _S_IFLNK = 0o170000, 0o100000, 0o040000, 0o120000


def scan_tree(root, patterns, on_excluded=None, cancel=None):
    """Walk ``root`` without following symlinks and return its manifest.

    Excluded entries are left out (excluded directories are not entered); ``on_excluded(relpath,
    is_dir)`` is called for each of them. Paths are str, decoded with the file system encoding
    (undecodable bytes survive as surrogates). Raises OSError when a directory cannot be read, and
    ScanCancelled when ``cancel`` (an object with ``is_set()``, such as a threading.Event) is set.

    One lstat per entry is the whole cost; the common types are handled inline (the same values
    as entry_of) because this loop runs once per file of the tree on every sync.
    """
    manifest = {}
    st = os.lstat(root)
    manifest['.'] = entry_of(st)
    stack = [('', root)]
    while stack:
        if cancel is not None and cancel.is_set():
            raise ScanCancelled()
        rel_dir, abs_dir = stack.pop()
        prefix = rel_dir + '/' if rel_dir else ''
        check = bool(patterns) and may_contain_excluded(rel_dir, patterns)
        with os.scandir(abs_dir) as it:
            for de in it:
                rel = prefix + de.name
                st = de.stat(follow_symlinks=False)
                m = st.st_mode
                fmt = m & _S_IFMT
                if check and is_excluded(rel, fmt == _S_IFDIR, patterns):
                    if on_excluded is not None:
                        on_excluded(rel, fmt == _S_IFDIR)
                    continue
                if fmt == _S_IFREG:
                    manifest[rel] = ('f', m & 0o7777, st.st_uid, st.st_gid, st.st_size, int(st.st_mtime), '')
                elif fmt == _S_IFDIR:
                    manifest[rel] = ('d', m & 0o7777, st.st_uid, st.st_gid, 0, 0, '')
                    stack.append((rel, de.path))
                else:
                    entry = entry_of(st, os.readlink(de.path) if fmt == _S_IFLNK else None)
                    if entry is not None:
                        manifest[rel] = entry
    return manifest


_MANIFEST_MAGIC = 'codebase_sync-manifest %d' % MANIFEST_VERSION
_ENTRY_TYPES = frozenset('fdlpcb')


def encode_manifest(manifest):
    """Compact, compressed wire form of a manifest (bytes).

    NUL-separated text, three fields per entry: path, ``type mode uid gid size mtime``, link target
    (a path cannot hold a NUL). About three times cheaper to build and to read than JSON, which
    matters on every sync of a 20,000-file tree.
    """
    parts = [_MANIFEST_MAGIC]
    add = parts.append
    for rel in sorted(manifest):
        e = manifest[rel]
        add('%s\0%s %d %d %d %d %d\0%s' % (rel, e[0], e[1], e[2], e[3], e[4], e[5], e[6]))
    return zlib.compress('\0'.join(parts).encode('utf-8', 'surrogateescape'), 1)


def decode_manifest(data):
    try:
        items = zlib.decompress(data).decode('utf-8', 'surrogateescape').split('\0')
    except (zlib.error, ValueError) as e:
        raise SyncError('the master sent an unreadable manifest (%s); is the export program on the master '
                        'the same version as this module?' % e)
    if items[0] != _MANIFEST_MAGIC or len(items) % 3 != 1:
        raise SyncError('the master sent a manifest of an unknown version; update the export program on the master')
    manifest = {}
    it = iter(items[1:])
    try:
        for rel, attrs, link in zip(it, it, it):
            kind, mode, uid, gid, size, mtime = attrs.split(' ')
            if kind not in _ENTRY_TYPES:
                raise ValueError('bad entry type %r' % kind)
            manifest[check_relpath(rel)] = (kind, int(mode), int(uid), int(gid), int(size), int(mtime), link)
    except ValueError as e:
        raise SyncError('the master sent a malformed manifest: %s' % e)
    return manifest


def diff_manifests(src, dest):
    """Return (changed, removed): sorted paths to (re)transfer and paths to delete on the target."""
    changed = sorted(p for p, e in src.items() if dest.get(p) != e)
    removed = sorted(p for p in dest if p not in src)
    return changed, removed


def paths_to_clear(changed, removed, src, dest):
    """Paths to delete from the hard-linked staging copy before extracting, deepest first.

    Every non-directory that changes is deleted (never written in place: its inode is shared with
    the live tree); a directory is deleted only when it disappears or stops being a directory.
    """
    out = set(removed)
    for p in changed:
        old = dest.get(p)
        if old is None:
            continue
        if old[0] != 'd' or src[p][0] != 'd':
            out.add(p)
    out.discard('.')
    return sorted(out, reverse=True)


def describe_changes(changed, removed, src, dest, limit):
    """Bounded, human-readable list of changes for diff mode."""
    lines = []
    for p in changed:
        lines.append(('%s %s' % ('+' if p not in dest else '~', p), p))
    for p in removed:
        lines.append(('- %s' % p, p))
    lines.sort(key=lambda x: x[1])
    shown = [t for t, _p in lines[:limit]]
    if len(lines) > limit:
        shown.append('... and %d more' % (len(lines) - limit))
    return shown


# ---------------------------------------------------------------------------------------------
# Command building
# ---------------------------------------------------------------------------------------------

def validate_abs_path(path, what):
    if not path or not isinstance(path, str) or not path.strip():
        raise SyncError('%s must not be empty' % what)
    if not path.startswith('/'):
        raise SyncError('%s must be an absolute path, got %r' % (what, path))
    norm = os.path.normpath(path)
    if norm.startswith('//'):
        norm = '/' + norm.lstrip('/')
    if norm in FORBIDDEN_DEST:
        raise SyncError('%s %r is a system directory, not a Nextcloud tree; refusing to replace it' % (what, path))
    return norm


def export_request(action, src_path, exclude):
    """argv of the request sent to the export program on the master."""
    argv = [EXPORT_NAME, action, src_path]
    for p in exclude or []:
        argv += ['--exclude', p]
    return argv


# Constant bash program that starts the ssh master connection in the background with its output
# going to a file, so that the caller does not wait for the pipes a background process keeps open.
#   $1 = file for ssh's stderr, then the ssh argv.
MASTER_SCRIPT = r'''errfile=$1; shift
"$@" </dev/null >/dev/null 2>"$errfile"
'''


def ssh_options(key, user, port=22, known_hosts=None, connect_timeout=10, control_path=None):
    """ssh options shared by the master connection and every session."""
    argv = ['-i', key,
            '-p', str(int(port)),
            '-l', user,
            '-o', 'BatchMode=yes',
            '-o', 'IdentitiesOnly=yes',
            '-o', 'PasswordAuthentication=no',
            '-o', 'KbdInteractiveAuthentication=no',
            '-o', 'StrictHostKeyChecking=yes',
            '-o', 'ConnectTimeout=%d' % int(connect_timeout),
            '-o', 'ServerAliveInterval=15',
            '-o', 'ServerAliveCountMax=4',
            '-o', 'LogLevel=ERROR']
    if known_hosts:
        argv += ['-o', 'UserKnownHostsFile=%s' % known_hosts, '-o', 'GlobalKnownHostsFile=/dev/null']
    if control_path:
        argv += ['-o', 'ControlPath=%s' % control_path]
    return argv


def ssh_master_argv(ssh_bin, host, user, key, control_path, port=22, known_hosts=None, connect_timeout=10):
    """argv of the background master connection (no command: the forced command never runs for it).

    It goes to the background once authenticated and exits 30 s after its last session, so even a
    killed module leaves nothing behind for long.
    """
    return [ssh_bin, '-M', '-N', '-f', '-T', '-x', '-a'] + \
        ssh_options(key, user, port, known_hosts, connect_timeout, control_path) + \
        ['-o', 'ControlPersist=30', '--', host]


def ssh_argv(ssh_bin, host, user, key, remote_argv, port=22, known_hosts=None, connect_timeout=10,
             control_path=None):
    """argv of ssh: key only, batch mode, pinned host keys (never StrictHostKeyChecking=no).

    ssh sends the remote command as one string to the server, where it is split again (by the
    export program when it is a forced command, by the login shell otherwise): every element is
    quoted with shlex.quote so that both give back exactly ``remote_argv``.
    """
    argv = [ssh_bin, '-T', '-x', '-a'] + ssh_options(key, user, port, known_hosts, connect_timeout, control_path)
    if control_path:
        # use the master connection when it is there, connect directly otherwise
        argv += ['-o', 'ControlMaster=no']
    argv += ['--', host, ' '.join(shlex.quote(a) for a in remote_argv)]
    return argv


def extract_argv(tar_bin, staging, index_file=None):
    """argv of the extracting tar on the target: owners, groups, modes and mtimes preserved.

    With ``index_file``, tar lists the extracted names in that file (not on stdout, which the caller
    would have to buffer).
    """
    argv = [tar_bin, '-x', '-f', '-', '-C', staging,
            '--numeric-owner', '--same-owner', '--same-permissions', '--totals']
    if index_file:
        argv += ['-v', '--index-file=%s' % index_file]
    return argv


def archive_argv(tar_bin, src_root):
    """argv of the archiving tar on the master: names come NUL-separated on stdin, no recursion."""
    return [tar_bin, '-c', '-f', '-', '-C', src_root, '--null', '--no-recursion', '--files-from=-',
            '--hard-dereference', '--numeric-owner', '--format=gnu']


def tree_archive_argv(tar_bin, src_root, excluded):
    """argv of the archiving tar on the master for a whole tree: tar recurses itself; ``excluded`` are
    exact relative paths (matched literally, anchored at the tree root, never entered)."""
    argv = [tar_bin, '-c', '-f', '-', '-C', src_root, '--hard-dereference', '--numeric-owner', '--format=gnu',
            '--anchored', '--no-wildcards']
    argv += ['--exclude=./%s' % rel for rel in excluded]
    return argv + ['--', '.']


def pipeline_argv(bash_bin, ssh_args, tar_args, ssh_err_file):
    """argv running ``ssh | tar`` through the constant PIPELINE_SCRIPT (no shell text from input)."""
    return [bash_bin, '-c', PIPELINE_SCRIPT, 'codebase_sync', str(len(tar_args)), ssh_err_file] + \
        list(tar_args) + list(ssh_args)


def parse_pipeline_status(stderr):
    """(ssh_rc, tar_rc) reported by PIPELINE_SCRIPT, or (None, None) if it did not get that far."""
    m = None
    for m in _STATUS_RE.finditer(stderr or ''):
        pass
    if m is None:
        return None, None
    return int(m.group(1)), int(m.group(2))


def parse_tar_totals(stderr):
    m = _TOTALS_RE.search(stderr or '')
    return int(m.group(1)) if m else 0


def explain_ssh_failure(rc, stderr, host, user):
    """Turn an ssh/export failure into a clear message."""
    err = (stderr or '').strip()
    low = err.lower()
    if rc == 255:
        if 'permission denied' in low:
            return ('the master %s rejected the sync key for user %s (Permission denied): is the key authorized '
                    'there, and is this node in its from= list? ssh said: %s' % (host, user, err))
        if 'host key verification failed' in low or 'no matching host key' in low or 'remote host identification' in low:
            return ('the host key of the master %s is not pinned or does not match the pinned key; refusing to '
                    'connect. ssh said: %s' % (host, err))
        if 'identity file' in low or 'no such identity' in low:
            return 'the sync key cannot be read: %s' % err
        return 'cannot reach the master %s over ssh: %s' % (host, err or 'ssh exited with 255')
    if rc == EXPORT_NO_SOURCE:
        return 'src_path does not exist on the master %s: %s' % (host, err)
    if rc == EXPORT_FORBIDDEN:
        return 'the master %s refused the request: %s' % (host, err)
    if rc == EXPORT_USAGE:
        return 'the export program on the master %s did not understand the request: %s' % (host, err)
    if rc == 127:
        return ('the export program %s is not installed on the master %s (or the key has no forced command): %s'
                % (EXPORT_NAME, host, err))
    return 'exporting the tree from the master %s failed (exit %s): %s' % (host, rc, err)


# ---------------------------------------------------------------------------------------------
# Target-side tree operations
# ---------------------------------------------------------------------------------------------

def _copy_dir_meta(src, dst):
    st = os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def link_copy(src_root, dst_root, patterns, run, cp_bin='cp'):
    """Make ``dst_root`` a copy of ``src_root`` whose files are hard links to the originals.

    Subtrees that hold no excluded path are copied by ``cp -al`` (one call per directory level);
    directories that may hold excluded paths are walked here so that excluded directories are not
    copied (they may be huge or other file systems) — they are returned instead, to be moved into
    the new tree after the swap. Excluded files are linked like any other file, so they stay.
    ``run(argv)`` returns (rc, stdout, stderr).
    """
    excluded_dirs = []
    os.mkdir(dst_root, 0o700)
    stack = [('', src_root, dst_root)]
    dirs_done = []
    while stack:
        rel_dir, s_dir, d_dir = stack.pop()
        batch = []
        with os.scandir(s_dir) as it:
            entries = list(it)
        for de in entries:
            rel = de.name if not rel_dir else rel_dir + '/' + de.name
            is_dir = de.is_dir(follow_symlinks=False)
            if is_dir and is_excluded(rel, True, patterns):
                excluded_dirs.append(rel)
                continue
            if is_dir and may_contain_excluded(rel, patterns):
                d_sub = os.path.join(d_dir, de.name)
                os.mkdir(d_sub, 0o700)
                stack.append((rel, de.path, d_sub))
                dirs_done.append((de.path, d_sub))
                continue
            batch.append(de.path)
        # cp needs the names in chunks to stay below the argv limit
        for i in range(0, len(batch), 500):
            argv = [cp_bin, '-a', '-l', '--no-preserve=links', '-t', d_dir, '--'] + batch[i:i + 500]
            rc, _out, err = run(argv)
            if rc != 0:
                raise SyncError('making the hard-linked staging copy failed: %s' % (err or '').strip())
    for s, d in reversed(dirs_done):
        _copy_dir_meta(s, d)
    _copy_dir_meta(src_root, dst_root)
    return sorted(excluded_dirs)


def find_excluded_dirs(root, patterns):
    """Excluded directories present in ``root`` (only walks where exclusions can be)."""
    found = []
    if not os.path.isdir(root) or os.path.islink(root):
        return found
    stack = ['']
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except OSError:
            continue
        for de in entries:
            if not de.is_dir(follow_symlinks=False):
                continue
            rel = de.name if not rel_dir else rel_dir + '/' + de.name
            if is_excluded(rel, True, patterns):
                found.append(rel)
            elif may_contain_excluded(rel, patterns):
                stack.append(rel)
    return sorted(found)


def safe_remove_tree(root, patterns):
    """Delete ``root`` except excluded directories inside it; return the excluded ones left behind.

    Old trees (previous, an interrupted staging folder) may still hold an excluded directory such as
    ``data/`` if a run died between the swap and moving it over; such data is never deleted.
    """
    if not os.path.lexists(root):
        return []
    if os.path.islink(root) or not os.path.isdir(root):
        os.unlink(root)
        return []
    keep = find_excluded_dirs(root, patterns)
    if not keep:
        _rmtree(root)
        return []
    keep_set = set(keep)
    parents = set()
    for k in keep:
        parts = k.split('/')
        for i in range(1, len(parts)):
            parents.add('/'.join(parts[:i]))

    def prune(rel_dir):
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        with os.scandir(abs_dir) as it:
            entries = list(it)
        for de in entries:
            rel = de.name if not rel_dir else rel_dir + '/' + de.name
            if rel in keep_set:
                continue
            if rel in parents:
                prune(rel)
            elif de.is_dir(follow_symlinks=False):
                _rmtree(de.path)
            else:
                os.unlink(de.path)
    prune('')
    return keep


def _rmtree(path):
    import shutil
    shutil.rmtree(path)


def remove_entry(path):
    """Delete a file, symlink or directory tree (never following symlinks)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        _rmtree(path)
    else:
        os.unlink(path)


RENAME_EXCHANGE = 2


def exchange(a, b):
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False when the kernel or libc cannot."""
    try:
        import ctypes
        try:
            libc = ctypes.CDLL('libc.so.6', use_errno=True)   # glibc; find_library runs ldconfig, slow
        except OSError:
            import ctypes.util
            libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    AT_FDCWD = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


# ---------------------------------------------------------------------------------------------
# The export program (runs on the master as the forced command of the sync key)
# ---------------------------------------------------------------------------------------------

def parse_request(words):
    """Parse the request argv (without the program name) into (action, src, exclude)."""
    if len(words) < 2 or words[0] not in ('manifest', 'tar', 'tar-list'):
        raise ValueError('expected "manifest|tar|tar-list SRC_PATH [--exclude PATTERN]..."')
    action, src = words[0], words[1]
    exclude = []
    rest = words[2:]
    while rest:
        if rest[0] != '--exclude' or len(rest) < 2:
            raise ValueError('unexpected argument %r' % rest[0])
        exclude.append(rest[1])
        rest = rest[2:]
    return action, src, exclude


def _under(path, root):
    root = root.rstrip('/') or '/'
    return path == root or path.startswith(root + '/') or root == '/'


def _err(msg):
    sys.stderr.write('%s: %s\n' % (EXPORT_NAME, msg))


def export_main(argv=None, environ=None, stdin=None, stdout=None):
    """Entry point of the export program.

    Own argv (set in the forced command): ``[--allow-root DIR]... [--tar PATH]``. The request comes
    from SSH_ORIGINAL_COMMAND when sshd runs this as a forced command, else from the remaining argv.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    allow, tar_bin = [], 'tar'
    while argv and argv[0] in ('--allow-root', '--tar'):
        if len(argv) < 2:
            _err('%s needs a value' % argv[0])
            return EXPORT_USAGE
        if argv[0] == '--allow-root':
            allow.append(os.path.realpath(argv[1]))
        else:
            tar_bin = argv[1]
        argv = argv[2:]
    original = environ.get('SSH_ORIGINAL_COMMAND')
    if original is not None:
        try:
            words = shlex.split(original)
        except ValueError as e:
            _err('cannot parse the request: %s' % e)
            return EXPORT_USAGE
    else:
        words = argv
    if words and words[0] == EXPORT_NAME:
        words = words[1:]
    try:
        action, src, exclude = parse_request(words)
        patterns = parse_patterns(exclude)
    except ValueError as e:
        _err(str(e))
        return EXPORT_USAGE
    if not src.startswith('/'):
        _err('SRC_PATH must be absolute: %r' % src)
        return EXPORT_USAGE
    real = os.path.realpath(src)
    if allow and not any(_under(real, r) for r in allow):
        _err('%s is outside the allowed roots %s' % (src, ', '.join(allow)))
        return EXPORT_FORBIDDEN
    if real == '/':
        _err('refusing to export /')
        return EXPORT_FORBIDDEN
    if not os.path.isdir(real):
        _err('%s does not exist or is not a directory' % src)
        return EXPORT_NO_SOURCE

    if action == 'manifest':
        try:
            data = encode_manifest(scan_tree(real, patterns))
        except OSError as e:
            _err('cannot read the tree: %s' % e)
            return EXPORT_FAILED
        stdout.write(data)
        stdout.flush()
        return EXPORT_OK

    if action == 'tar-list':
        raw = stdin.read()
        names = []
        real_dirs = set([''])
        for item in raw.split(b'\0'):
            if not item:
                continue
            rel = os.fsdecode(item)
            try:
                check_relpath(rel)
            except ValueError as e:
                _err(str(e))
                return EXPORT_FORBIDDEN
            if rel != '.':
                # every parent must be a real directory of the tree: no escape through a symlink
                parts = rel.split('/')
                for i in range(1, len(parts)):
                    parent = '/'.join(parts[:i])
                    if parent in real_dirs:
                        continue
                    try:
                        pst = os.lstat(os.path.join(real, parent))
                    except OSError:
                        pst = None
                    if pst is None or not stat.S_ISDIR(pst.st_mode):
                        _err('%s: %s is not a directory of the tree' % (rel, parent))
                        return EXPORT_FORBIDDEN
                    real_dirs.add(parent)
                full = os.path.join(real, rel)
                is_dir = os.path.isdir(full) and not os.path.islink(full)
                if is_excluded_path(rel, is_dir, patterns):
                    _err('%s is excluded' % rel)
                    return EXPORT_FORBIDDEN
            names.append(item)
        return _run_tar(tar_bin, real, iter(names), stdout)

    # action == 'tar': the whole tree. tar walks it itself (no name per file through a pipe) when the
    # excluded entries can be named exactly; else this walk feeds it the names.
    try:
        excluded = excluded_entries(real, patterns)
    except OSError as e:
        _err('cannot read the tree: %s' % e)
        return EXPORT_FAILED
    if excluded is not None:
        return _run_tar(tar_bin, real, None, stdout, excluded=excluded)

    def walk():
        yield b'.'
        stack = ['']
        while stack:
            rel_dir = stack.pop()
            abs_dir = os.path.join(real, rel_dir) if rel_dir else real
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda d: d.name)
            subdirs = []
            check = bool(patterns) and may_contain_excluded(rel_dir, patterns)
            for de in entries:
                rel = de.name if not rel_dir else rel_dir + '/' + de.name
                is_dir = de.is_dir(follow_symlinks=False)
                if check and is_excluded(rel, is_dir, patterns):
                    continue
                yield os.fsencode(rel)
                if is_dir:
                    subdirs.append(rel)
            stack.extend(reversed(subdirs))
    return _run_tar(tar_bin, real, walk(), stdout)


# At most this many excluded entries are handed to tar as --exclude options.
MAX_TAR_EXCLUDES = 256


def excluded_entries(root, patterns, limit=MAX_TAR_EXCLUDES):
    """The excluded entries of ``root`` as exact names (relative), or None when they cannot be handed to tar.

    Only the directories that may hold an excluded entry are read (the root and ``config/`` for the
    usual ``data/`` and ``config/node.config.php``). None when there are more than ``limit`` or a
    name holds a newline.
    """
    found = []
    if not patterns:
        return found
    stack = ['']
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        with os.scandir(abs_dir) as it:
            entries = list(it)
        for de in entries:
            rel = de.name if not rel_dir else rel_dir + '/' + de.name
            is_dir = de.is_dir(follow_symlinks=False)
            if is_excluded(rel, is_dir, patterns):
                if '\n' in rel or len(found) >= limit:
                    return None
                found.append(rel)
            elif is_dir and may_contain_excluded(rel, patterns):
                stack.append(rel)
    return sorted(found)


def _run_tar(tar_bin, root, names, stdout, excluded=None):
    """Run the archiving tar with its output on ``stdout`` (a file).

    With ``names`` (an iterable of bytes), tar archives exactly those, read from its stdin. Without,
    it archives the whole tree itself, minus the exact relative paths in ``excluded``.
    """
    if names is None:
        argv = tree_archive_argv(tar_bin, root, excluded or [])
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout.fileno())
        rc = proc.wait()
        if rc != 0:
            _err('tar exited with %d' % rc)
            return EXPORT_FAILED
        return EXPORT_OK
    proc = subprocess.Popen(archive_argv(tar_bin, root), stdin=subprocess.PIPE, stdout=stdout.fileno())
    walk_error = None
    try:
        for name in names:
            proc.stdin.write(name + b'\0')
    except OSError as e:
        walk_error = e
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
    rc = proc.wait()
    if walk_error is not None:
        _err('cannot read the tree: %s' % walk_error)
        return EXPORT_FAILED
    if rc != 0:
        _err('tar exited with %d' % rc)
        return EXPORT_FAILED
    return EXPORT_OK


if __name__ == '__main__':
    raise SystemExit(export_main())
