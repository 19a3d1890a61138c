# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Exclusion patterns, and the check of a relative path received from the other side.

Part of the export program (``.ci/bundle-export``): standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch


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
