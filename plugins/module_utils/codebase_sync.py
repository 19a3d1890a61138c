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
import threading

EXPORT_NAME = 'nc-sync-export'
MANIFEST_VERSION = 3

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
# Manifest: {relpath: attrs}, attrs a str such as 'f 640 33 33 1234 1700000000'
# ---------------------------------------------------------------------------------------------
#
# Both sides build the manifest with GNU find's -printf (C speed: one lstat per entry, no Python
# per entry) and compare it as strings, so a no-op check costs two tree walks and one dict
# comparison. The attributes of each type:
#   f MODE UID GID SIZE MTIME     regular file (MODE octal with the special bits, MTIME whole seconds)
#   d MODE UID GID                directory (its mtime changes whenever an entry is added or removed,
#                                 carrying excluded paths over changes it, and means nothing to the
#                                 application; the size depends on the file system)
#   l UID GID TARGET              symlink (modes and mtimes of symlinks mean nothing on Linux)
#   p MODE UID GID MTIME          FIFO
#   c/b MODE UID GID RDEV MTIME   character/block device
# Sockets are left out: tar cannot carry them. The Python walk (scan_tree) gives the same strings;
# it is used when the excluded entries cannot be handed to find as exact names.

def entry_of(st, link=None):
    """Manifest attributes of an lstat result, the same string find's -printf gives (FIND_FORMATS)."""
    m = st.st_mode
    mtime = st.st_mtime_ns // 1000000000
    if stat.S_ISREG(m):
        return 'f %o %d %d %d %d' % (m & 0o7777, st.st_uid, st.st_gid, st.st_size, mtime)
    if stat.S_ISDIR(m):
        return 'd %o %d %d' % (m & 0o7777, st.st_uid, st.st_gid)
    if stat.S_ISLNK(m):
        return 'l %d %d %s' % (st.st_uid, st.st_gid, link or '')
    if stat.S_ISFIFO(m):
        return 'p %o %d %d %d' % (m & 0o7777, st.st_uid, st.st_gid, mtime)
    if stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = 'c' if stat.S_ISCHR(m) else 'b'
        return '%s %o %d %d %d %d' % (kind, m & 0o7777, st.st_uid, st.st_gid, st.st_rdev, mtime)
    return None   # sockets and the like: tar cannot carry them


# find -printf formats, one "path NUL attrs NUL" pair per entry (path relative, '' for the root).
# Types find cannot describe fully (devices: no rdev) get '?' and are completed by _complete_others.
# find runs with TZ=UTC0: %Ts is computed through localtime(), which otherwise reads the zone file
# for every entry.
FIND_FORMATS = (
    ('f', r'%P\0f %m %U %G %s %Ts\0'),
    ('d', r'%P\0d %m %U %G\0'),
    ('l', r'%P\0l %U %G %l\0'),
    ('p', r'%P\0p %m %U %G %Ts\0'),
)
_UNKNOWN = '?'


class ScanCancelled(Exception):
    """scan_tree was told to stop."""


_S_IFMT, _S_IFREG, _S_IFDIR, _S_IFLNK = 0o170000, 0o100000, 0o040000, 0o120000


def scan_tree(root, patterns, on_excluded=None, cancel=None):
    """Walk ``root`` in Python without following symlinks and return its manifest.

    The fallback of tree_manifest when exclusions cannot be handed to find. Excluded entries are
    left out (excluded directories are not entered); ``on_excluded(relpath, is_dir)`` is called for
    each of them. Paths are str, decoded with the file system encoding (undecodable bytes survive
    as surrogates). Raises OSError when a directory cannot be read, and ScanCancelled when
    ``cancel`` (an object with ``is_set()``, such as a threading.Event) is set.
    """
    manifest = {'.': entry_of(os.lstat(root))}
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
                fmt = st.st_mode & _S_IFMT
                if check and is_excluded(rel, fmt == _S_IFDIR, patterns):
                    if on_excluded is not None:
                        on_excluded(rel, fmt == _S_IFDIR)
                    continue
                entry = entry_of(st, os.readlink(de.path) if fmt == _S_IFLNK else None)
                if entry is not None:
                    manifest[rel] = entry
                if fmt == _S_IFDIR:
                    stack.append((rel, de.path))
    return manifest


def _glob_escape(name):
    """``name`` as a literal for find's -path (fnmatch with backslash escapes)."""
    return re.sub(r'([\\*?\[\]])', r'\\\1', name)


def find_argv(find_bin, excluded, start_points=None, maxdepth=None):
    """argv of the find that writes the manifest of the tree it runs in (cwd = the tree's root).

    ``excluded`` are exact relative paths; they are pruned (never entered, never printed). By
    default find walks ``.`` and prints paths relative to it (%P, '' for the root). With
    ``start_points`` (relative paths such as ``apps/files``, none beginning with a character find
    reads as an expression) it walks those and prints paths as given (%p): the same relative form.
    """
    if start_points is None:
        argv, prefix, name = [find_bin, '.'], './', '%P'
    else:
        argv, prefix, name = [find_bin] + list(start_points), '', '%p'
    if maxdepth is not None:
        argv += ['-maxdepth', str(int(maxdepth))]
    if excluded:
        argv.append('(')
        for i, rel in enumerate(excluded):
            if i:
                argv.append('-o')
            argv += ['-path', prefix + _glob_escape(rel)]
        argv += [')', '-prune', '-o']
    for kind, fmt in FIND_FORMATS:
        argv += ['(', '-type', kind, '-printf', name + fmt[2:], ')', '-o']
    return argv + ['-printf', name + r'\0' + _UNKNOWN + r'\0']


FIND_ENV = {'TZ': 'UTC0', 'LC_ALL': 'C'}


def run_find(find_bin, root, excluded):
    """Run find_argv in ``root``; return its output (bytes). Raises OSError when find fails."""
    return _run_finds_side_by_side([find_argv(find_bin, excluded)], root)


# The master's walk is on every sync's critical path (the node compares only once the master's manifest
# is there; its own walks run meanwhile), so the export splits it over several find processes: one for
# the root and its entries, the others for the second-level entries, dealt out in turn.
FIND_JOBS = 4
# Second-level entries beginning with these would be read by find as its expression, not as a path.
_FIND_EXPR_START = ('-', '(', ')', '!', ',')
MAX_FIND_START_POINTS = 4096
# ... and this many bytes of them in all, far below the smallest argv limit Linux gives (128 KiB)
MAX_FIND_START_BYTES = 64 * 1024


def split_walk(root, excluded, jobs):
    """Start points of ``jobs`` find processes that together walk ``root`` below its first level, or
    None when the walk is better not split (one job, too few or too many entries, unusual names).

    A second-level entry that disappears before its find reaches it fails the walk, as an entry that
    disappears during one find's walk does."""
    if jobs < 2:
        return None
    skip = set(excluded)
    points = []
    with os.scandir(root) as it:
        tops = sorted(de.name for de in it if de.is_dir(follow_symlinks=False) and de.name not in skip)
    for top in tops:
        if top.startswith(_FIND_EXPR_START):
            return None
        with os.scandir(os.path.join(root, top)) as it:
            points.extend(rel for rel in (top + '/' + de.name for de in it) if rel not in skip)
        if len(points) > MAX_FIND_START_POINTS:
            return None
    if len(points) < 2 * jobs or sum(len(os.fsencode(p)) + 1 for p in points) > MAX_FIND_START_BYTES:
        return None
    points.sort()
    return [points[i::jobs] for i in range(jobs)]


def run_finds(find_bin, root, excluded, jobs=FIND_JOBS):
    """The output of run_find, from up to ``jobs`` + 1 find processes running side by side.

    Raises OSError when one of them fails (the tree changed under it, for one)."""
    plan = split_walk(root, excluded, min(jobs, os.cpu_count() or 1))
    if plan is None:
        return run_find(find_bin, root, excluded)
    argvs = [find_argv(find_bin, excluded, maxdepth=1)]
    argvs += [find_argv(find_bin, excluded, start_points=points) for points in plan]
    return _run_finds_side_by_side(argvs, root)


def _run_finds_side_by_side(argvs, root):
    """Run every find argv in ``argvs`` at once in ``root``; return their outputs joined (bytes).

    Raises OSError when one of them cannot start, fails or cannot be read; every one is reaped."""
    env = dict(os.environ, **FIND_ENV)
    procs, results = [], [None] * len(argvs)

    def collect(i):
        try:
            results[i] = procs[i].communicate()
        except Exception as e:     # reported below, after every reader ended
            results[i] = e

    readers = []
    try:
        for argv in argvs:
            procs.append(subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        # every pipe is read while all run (one reader would stall the others once their pipes are full)
        readers = [threading.Thread(target=collect, args=(i,)) for i in range(1, len(procs))]
        for t in readers:
            t.start()
        collect(0)
    finally:
        for t in readers:
            if t.ident is not None:
                t.join()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, result in zip(procs, results):
        if isinstance(result, Exception):
            raise OSError(errno.EIO, 'reading find failed: %s' % result, root)
        if proc.returncode != 0:
            raise OSError(errno.EIO, 'find failed (exit %d): %s' % (
                proc.returncode, result[1].decode('utf-8', 'replace').strip()[-2000:]), root)
    return b''.join(out for out, _err in results)


def parse_pairs(data):
    """{path: attrs} of "path NUL attrs NUL" pairs (bytes); the root ('' from find) becomes '.'."""
    items = data.decode('utf-8', 'surrogateescape').split('\0')
    if items.pop() != '' or len(items) % 2:
        raise ValueError('truncated manifest')
    it = iter(items)
    manifest = dict(zip(it, it))
    if '' in manifest:
        manifest['.'] = manifest.pop('')
    return manifest


def _complete_others(root, manifest):
    """Replace the '?' of entries find could not describe (devices, sockets) by lstat."""
    for rel in [r for r, a in manifest.items() if a == _UNKNOWN]:
        st = os.lstat(os.path.join(root, rel))
        entry = entry_of(st)
        if entry is None:
            del manifest[rel]
        else:
            manifest[rel] = entry
    return manifest


def tree_manifest(root, patterns, find_bin='find'):
    """Manifest of ``root`` and its excluded entries: ({relpath: attrs}, [(relpath, is_dir)]).

    find walks the tree when the excluded entries can be named exactly (the usual case: they are
    found by reading only the folders that can hold them); else the Python walk does.
    Raises OSError when the tree cannot be read.
    """
    excluded = excluded_entries(root, patterns, with_type=True)
    if excluded is None:
        found = []
        manifest = scan_tree(root, patterns, on_excluded=lambda rel, is_dir: found.append((rel, is_dir)))
        return manifest, found
    manifest = parse_pairs(run_find(find_bin, root, [rel for rel, _d in excluded]))
    return _complete_others(root, manifest), excluded


def encode_manifest(manifest):
    """Wire form of a manifest: "path NUL attrs NUL" pairs (bytes), as find writes them."""
    return ''.join('%s\0%s\0' % ('' if rel == '.' else rel, attrs)
                   for rel, attrs in manifest.items()).encode('utf-8', 'surrogateescape')


_MANIFEST_MAGIC = 'codebase_sync-manifest %d' % MANIFEST_VERSION
_ENTRY_TYPES = frozenset('fdlpcb')


def manifest_header(length):
    """The line that precedes a manifest of ``length`` bytes on the wire."""
    return ('%s %d\n' % (_MANIFEST_MAGIC, length)).encode('ascii')


def parse_manifest_header(line):
    """Length announced by a manifest header line; SyncError when it is not one."""
    words = line.decode('ascii', 'replace').split()
    if len(words) != 3 or ' '.join(words[:2]) != _MANIFEST_MAGIC or not words[2].isdigit():
        raise SyncError('the master answered %r instead of a manifest; is the export program on the master the '
                        'same version as this module?' % line[:80])
    return int(words[2])


def decode_manifest(data):
    """The master's manifest; SyncError when it is malformed. Paths are checked when used (diff_manifests)."""
    try:
        manifest = parse_pairs(data)
    except ValueError as e:
        raise SyncError('the master sent a malformed manifest: %s' % e)
    if '.' not in manifest:
        raise SyncError('the master sent a manifest without the tree itself')
    return manifest


def diff_manifests(src, dest):
    """Return (changed, removed): sorted paths to (re)transfer and paths to delete on the target.

    ``src`` is the master's manifest: every path to transfer is checked here (relative, no '..')
    and so is its entry type.
    """
    if src == dest:
        return [], []
    changed = sorted(p for p, _a in src.items() - dest.items())
    removed = sorted(dest.keys() - src.keys())
    for p in changed:
        try:
            check_relpath(p)
        except ValueError as e:
            raise SyncError('the master sent a malformed manifest: %s' % e)
        if src[p][:1] not in _ENTRY_TYPES or src[p][1:2] != ' ':
            raise SyncError('the master sent a malformed manifest: bad entry %r for %r' % (src[p][:40], p))
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


# Preferred first, the rest of ssh's defaults kept after it (the '^' form): AES-GCM runs on the
# CPU's AES instructions and costs about half of chacha20-poly1305 per byte, which shows when a
# whole tree goes through on a busy node.
SSH_CIPHERS = '^aes128-gcm@openssh.com,aes256-gcm@openssh.com'


def ssh_options(key, user, port=22, known_hosts=None, connect_timeout=10):
    """ssh options: key only, batch mode, pinned host keys (never StrictHostKeyChecking=no)."""
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
            '-o', 'Compression=no',          # a LAN is faster than zlib; the archive is mostly compressed files
            '-o', 'Ciphers=%s' % SSH_CIPHERS,
            '-o', 'ControlMaster=no',        # one session per sync: nothing to share
            '-o', 'ControlPath=none',
            '-o', 'LogLevel=ERROR']
    if known_hosts:
        argv += ['-o', 'UserKnownHostsFile=%s' % known_hosts, '-o', 'GlobalKnownHostsFile=/dev/null']
    return argv


def ssh_argv(ssh_bin, host, user, key, remote_argv, port=22, known_hosts=None, connect_timeout=10):
    """argv of ssh running ``remote_argv`` on the master.

    ssh sends the remote command as one string to the server, where it is split again (by the
    export program when it is a forced command, by the login shell otherwise): every element is
    quoted with shlex.quote so that both give back exactly ``remote_argv``.
    """
    argv = [ssh_bin, '-T', '-x', '-a'] + ssh_options(key, user, port, known_hosts, connect_timeout)
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


def parse_tar_totals(stderr):
    m = _TOTALS_RE.search(stderr or '')
    return int(m.group(1)) if m else 0


class ExportSession(object):
    """One ssh session with the export program on the master; every sync uses exactly one.

    ``sync`` request: the master sends its manifest (a header line with its length, then the
    manifest), this side answers with the paths it needs (NUL-separated, then end of input) and the
    master streams them as a tar archive. ``tar`` request: the whole tree as a tar archive.
    The archive goes from ssh's stdout straight into the extracting tar (the file descriptor is
    handed over; no byte of it passes through Python).

    Two processes talking to each other is what run_command cannot do, hence subprocess here. Every
    value travels as an argv element; no shell is involved.
    """

    def __init__(self, ssh_args, workdir, host, user, send=True):
        self.host, self.user = host, user
        self.workdir = workdir
        self.bytes = 0
        self._err = open(os.path.join(workdir, 'ssh.err'), 'w+b')
        self.proc = subprocess.Popen(ssh_args, stdin=subprocess.PIPE if send else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._err, bufsize=0)

    def _ssh_error(self):
        self._err.seek(0)
        return self._err.read().decode('utf-8', 'replace')

    def _failed(self, what):
        """The session ended early: explain why (ssh's or the export's exit status and message)."""
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if rc == 0:
            return SyncError('the master %s ended the session %s' % (self.host, what))
        return SyncError(explain_ssh_failure(rc, self._ssh_error(), self.host, self.user))

    def _read_exactly(self, n):
        fd = self.proc.stdout.fileno()
        chunks = []
        while n > 0:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise self._failed('in the middle of the manifest')
            chunks.append(chunk)
            n -= len(chunk)
        return b''.join(chunks)

    def read_manifest(self):
        """The master's manifest (bytes, for decode_manifest)."""
        fd = self.proc.stdout.fileno()
        head = b''
        while not head.endswith(b'\n'):
            byte = os.read(fd, 1)   # byte by byte: never read past the header into what follows
            if not byte:
                raise self._failed('before sending its manifest')
            head += byte
            if len(head) > 200:
                raise SyncError('the master %s answered %r instead of a manifest' % (self.host, head[:80]))
        data = self._read_exactly(parse_manifest_header(head))
        self.bytes += len(head) + len(data)
        return data

    def request(self, names):
        """Ask for ``names`` (relative paths; none = end the session without a transfer)."""
        try:
            if names:
                self.proc.stdin.write(b''.join(os.fsencode(n) + b'\0' for n in names))
            self.proc.stdin.close()
        except OSError:
            pass    # the master went away: extract()/end() report why

    def end(self):
        """Wait for a session that transfers nothing to end cleanly."""
        self.request([])
        rest = self.proc.stdout.read()
        rc = self.proc.wait()
        if rc != 0 or rest:
            raise SyncError(explain_ssh_failure(rc, self._ssh_error(), self.host, self.user) if rc
                            else 'the master %s sent %d unexpected bytes' % (self.host, len(rest)))

    def extract(self, tar_argv):
        """Let ``tar_argv`` (tar -x) read the archive from ssh; return the bytes it read."""
        tar_err_path = os.path.join(self.workdir, 'tar.err')
        with open(tar_err_path, 'w+b') as tar_err:
            try:
                tar = subprocess.Popen(tar_argv, stdin=self.proc.stdout, stdout=subprocess.DEVNULL, stderr=tar_err)
            finally:
                self.proc.stdout.close()    # tar has it now; ssh sees EPIPE if tar dies
            tar_rc = tar.wait()
            ssh_rc = self.proc.wait()
            tar_err.seek(0)
            tar_msg = tar_err.read().decode('utf-8', 'replace')
        if ssh_rc != 0:
            raise SyncError(explain_ssh_failure(ssh_rc, self._ssh_error(), self.host, self.user))
        if tar_rc != 0:
            raise SyncError('extracting the tree on this node failed (tar exit %d): %s' % (tar_rc, tar_msg.strip()))
        read = parse_tar_totals(tar_msg)
        self.bytes += read
        return read

    def close(self):
        """Stop the session if it still runs (after a failure); idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass


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

EXPORT_ACTIONS = ('manifest', 'sync', 'tar', 'tar-list')


def parse_request(words):
    """Parse the request argv (without the program name) into (action, src, exclude)."""
    if len(words) < 2 or words[0] not in EXPORT_ACTIONS:
        raise ValueError('expected "%s SRC_PATH [--exclude PATTERN]..."' % '|'.join(EXPORT_ACTIONS))
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


def export_manifest(real, patterns, find_bin='find'):
    """The manifest of the tree ``real`` in its wire form (bytes): find's output as it is when possible."""
    excluded = excluded_entries(real, patterns)
    if excluded is None:
        return encode_manifest(scan_tree(real, patterns))
    data = run_finds(find_bin, real, excluded)
    if b'\0' + _UNKNOWN.encode() + b'\0' in data:
        data = encode_manifest(_complete_others(real, parse_pairs(data)))
    return data


def read_listed_names(raw, real, patterns):
    """The NUL-separated names of a tar-list/sync request, checked: relative, no '..', every parent a
    real directory of the tree (no escape through a symlink), nothing excluded. ValueError otherwise."""
    names = []
    real_dirs = set([''])
    for item in raw.split(b'\0'):
        if not item:
            continue
        rel = os.fsdecode(item)
        check_relpath(rel)
        if rel != '.':
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
                    raise ValueError('%s: %s is not a directory of the tree' % (rel, parent))
                real_dirs.add(parent)
            full = os.path.join(real, rel)
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            if is_excluded_path(rel, is_dir, patterns):
                raise ValueError('%s is excluded' % rel)
        names.append(item)
    return names


def export_main(argv=None, environ=None, stdin=None, stdout=None):
    """Entry point of the export program.

    Own argv (set in the forced command): ``[--allow-root DIR]... [--tar PATH] [--find PATH]``. The
    request comes from SSH_ORIGINAL_COMMAND when sshd runs this as a forced command, else from the
    remaining argv. Requests:

    * ``manifest SRC``: the manifest (header line, then the pairs);
    * ``sync SRC``: the manifest, then reads the wanted names on stdin (NUL-separated, up to end of
      input) and sends them as a tar archive (nothing when no name comes);
    * ``tar-list SRC``: the names on stdin as a tar archive;
    * ``tar SRC``: the whole tree as a tar archive.

    Every request takes ``--exclude PATTERN`` options; excluded paths are never sent.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    allow, tools = [], {'--tar': 'tar', '--find': 'find'}
    while argv and argv[0] in ('--allow-root', '--tar', '--find'):
        if len(argv) < 2:
            _err('%s needs a value' % argv[0])
            return EXPORT_USAGE
        if argv[0] == '--allow-root':
            allow.append(os.path.realpath(argv[1]))
        else:
            tools[argv[0]] = argv[1]
        argv = argv[2:]
    tar_bin, find_bin = tools['--tar'], tools['--find']
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

    if action in ('manifest', 'sync'):
        try:
            data = export_manifest(real, patterns, find_bin)
        except OSError as e:
            _err('cannot read the tree: %s' % e)
            return EXPORT_FAILED
        stdout.write(manifest_header(len(data)))
        stdout.write(data)
        stdout.flush()
        if action == 'manifest':
            return EXPORT_OK

    if action in ('sync', 'tar-list'):
        try:
            names = read_listed_names(stdin.read(), real, patterns)
        except ValueError as e:
            _err(str(e))
            return EXPORT_FORBIDDEN
        if not names:
            return EXPORT_OK
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


def excluded_entries(root, patterns, limit=MAX_TAR_EXCLUDES, with_type=False):
    """The excluded entries of ``root`` as exact names (relative), or None when they cannot be handed to
    tar or find.

    Only the directories that may hold an excluded entry are read (the root and ``config/`` for the
    usual ``data/`` and ``config/node.config.php``). None when there are more than ``limit`` or a
    name holds a newline. With ``with_type``, (name, is_dir) pairs.
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
                found.append((rel, is_dir) if with_type else rel)
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
