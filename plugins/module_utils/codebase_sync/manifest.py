# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The manifest on the wire (header, encoding, decoding) and the comparison of two manifests.

Part of the export program (``.ci/bundle-export``): standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import check_relpath
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    MANIFEST_VERSION,
    SyncError,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import parse_pairs


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
