# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The tree walk that gives a manifest: GNU find (split over several processes on the master), or Python.

Part of the export program (``.ci/bundle-export``): standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re
import stat
import subprocess
import threading

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import (
    is_excluded,
    may_contain_excluded,
)


# Manifest: {relpath: attrs}, attrs a str such as 'f 640 33 33 1234 1700000000'
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
