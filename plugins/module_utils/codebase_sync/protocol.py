# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the codebase_sync module and the master's export program agree on.

The export program's name and exit codes, the manifest version, the requests it answers and the
error the module reports. Part of the export program (``.ci/bundle-export``): standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os


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


class SyncError(Exception):
    """A failure with a message meant for the user."""


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
