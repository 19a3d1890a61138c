# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The export program: runs on the master as the forced command of the sync key.

The ``nc_sync`` role installs it as ``nc_sync_export.py``, a single file that ``.ci/bundle-export``
builds from protocol, patterns, walk, manifest and this file, so the master (plain python3, no
Ansible) computes the manifest with the module's own code, which is what makes the no-op check
exact. Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shlex
import stat
import subprocess
import sys

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import (
    encode_manifest,
    manifest_header,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import (
    check_relpath,
    is_excluded,
    is_excluded_path,
    may_contain_excluded,
    parse_patterns,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    EXPORT_FAILED,
    EXPORT_FORBIDDEN,
    EXPORT_NAME,
    EXPORT_NO_SOURCE,
    EXPORT_OK,
    EXPORT_USAGE,
    parse_request,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import (
    _UNKNOWN,
    _complete_others,
    excluded_entries,
    parse_pairs,
    run_finds,
    scan_tree,
)


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
