# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Operations on the node's trees: the hard-linked staging copy, removal that keeps excluded data, the swap."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import stat

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import (
    is_excluded,
    may_contain_excluded,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import SyncError


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
