# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's side of a sync: the CodebaseSync run behind the codebase_sync module's main()."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import os
import threading
import time

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.manifest import (
    decode_manifest,
    describe_changes,
    diff_manifests,
    paths_to_clear,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.patterns import parse_patterns
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    SyncError,
    export_request,
    validate_abs_path,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.transport import (
    ExportSession,
    extract_argv,
    ssh_argv,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.tree import (
    exchange,
    find_excluded_dirs,
    link_copy,
    remove_entry,
    safe_remove_tree,
)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.walk import tree_manifest


class CodebaseSync(object):

    def __init__(self, module):
        self.module = module
        p = module.params
        self.started = time.time()
        self.src_host = p['src_host']
        self.src_path = validate_abs_path(p['src_path'], 'src_path')
        dest = validate_abs_path(p['dest_path'], 'dest_path')
        self.dest = validate_abs_path(os.path.realpath(dest), 'dest_path (resolved)')
        self.parent = os.path.dirname(self.dest)
        if not os.path.isdir(self.parent):
            raise SyncError('the parent directory of dest_path, %s, does not exist' % self.parent)
        if os.path.lexists(self.dest) and not os.path.isdir(self.dest):
            raise SyncError('dest_path %s exists and is not a directory' % self.dest)
        if not self.src_host or not self.src_host.strip():
            raise SyncError('src_host must not be empty')
        try:
            self.patterns = parse_patterns(p['exclude'])
        except ValueError as e:
            raise SyncError(str(e))
        self.keep_previous = p['keep_previous']
        self.previous = None
        if self.keep_previous:
            self.previous = validate_abs_path(p['previous_path'] or self.dest + '.previous', 'previous_path')
            if self.previous == self.dest:
                raise SyncError('previous_path must differ from dest_path')
        name = os.path.basename(self.dest)
        self.staging = os.path.join(self.parent, '.%s.codebase_sync-staging' % name)
        self.trash = os.path.join(self.parent, '.%s.codebase_sync-old' % name)
        self.lockfile = os.path.join(self.parent, '.%s.codebase_sync.lock' % name)
        if not os.path.isfile(p['ssh_key']):
            raise SyncError('the ssh key %s does not exist on this node' % p['ssh_key'])
        self.ssh_bin = module.get_bin_path('ssh', required=True)
        self.tar_bin = module.get_bin_path('tar', required=True)
        self.cp_bin = module.get_bin_path('cp', required=True)
        self.find_bin = module.get_bin_path('find', required=True)
        self.bytes = 0
        self.staging_from = None
        self.timings = {}
        self.prebuild = None
        self.previous_scan = None
        self.prebuilt_ok = False
        self.prebuild_error = None

    # -- talking to the master ---------------------------------------------------------------

    def session(self, action, send=True):
        """Open the ssh session with the export program on the master (see ExportSession)."""
        p = self.module.params
        argv = ssh_argv(self.ssh_bin, self.src_host, p['ssh_user'], p['ssh_key'],
                        export_request(action, self.src_path, p['exclude']),
                        port=p['ssh_port'], known_hosts=p['known_hosts'], connect_timeout=p['connect_timeout'])
        if not send:
            argv.insert(1, '-n')   # nothing to send: stdin from /dev/null
        return ExportSession(argv, self.module.tmpdir, self.src_host, p['ssh_user'], send=send)

    # -- local tree operations ---------------------------------------------------------------

    def recover(self):
        """Put back excluded directories an interrupted run left in an old tree."""
        if not os.path.isdir(self.dest):
            return
        for old in (self.staging, self.trash, self.previous):
            if not old or not os.path.isdir(old):
                continue
            for rel in find_excluded_dirs(old, self.patterns):
                target = os.path.join(self.dest, rel)
                if not os.path.lexists(target) and os.path.isdir(os.path.dirname(target)):
                    os.rename(os.path.join(old, rel), target)
                    self.module.warn('moved %s back from %s, where an interrupted sync had left it' % (rel, old))

    def remove_old(self, path):
        left = safe_remove_tree(path, self.patterns)
        if left:
            self.module.warn('left %s in place: it holds excluded %s, which this module never deletes'
                             % (path, ', '.join(left)))

    def cleanup(self):
        for path in (self.staging, self.trash):
            try:
                self.remove_old(path)
            except OSError as e:
                self.module.warn('could not remove %s: %s' % (path, e))

    def swap(self):
        """Put staging in place of dest; the old tree ends up at previous (or is deleted)."""
        if not os.path.lexists(self.dest):
            os.rename(self.staging, self.dest)
            return None
        excluded_dirs = find_excluded_dirs(self.dest, self.patterns)
        if self.previous and os.path.lexists(self.previous):
            os.rename(self.previous, self.trash)
        if not exchange(self.staging, self.dest):
            os.rename(self.dest, self.trash if not self.previous else self.previous)
            os.rename(self.staging, self.dest)
            old = self.trash if not self.previous else self.previous
        else:
            old = self.previous or self.trash
            if os.path.lexists(old):
                # previous was moved to trash above; old can only exist here when keep_previous is false
                raise SyncError('%s appeared during the sync' % old)
            os.rename(self.staging, old)
        for rel in excluded_dirs:
            src = os.path.join(old, rel)
            dst = os.path.join(self.dest, rel)
            if os.path.lexists(src) and not os.path.lexists(dst) and os.path.isdir(os.path.dirname(dst)):
                os.rename(src, dst)
        if old == self.trash or (self.previous and os.path.lexists(self.trash)):
            self.remove_old(self.trash)
        return self.previous

    # -- the run -----------------------------------------------------------------------------

    def run(self):
        result = dict(changed=False, files_changed=0, bytes_transferred=0, seconds=0.0,
                      previous_path=None, dest_real_path=self.dest, method='none')
        check = self.module.check_mode
        lock = None
        if not check:
            lock = open(self.lockfile, 'a')
            os.chmod(self.lockfile, 0o600)
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise SyncError('another codebase_sync into %s is running (lock %s)' % (self.dest, self.lockfile))
        try:
            if not check:
                self.recover()
                self.cleanup()
            if not os.path.isdir(self.dest) and not check:
                return self.first_sync(result)
            return self.compare_and_sync(result)
        except BaseException:
            for thread in (self.prebuild, self.previous_scan):
                if thread is not None and thread.ident is not None:
                    thread.join()
            if not check:
                self.cleanup()
            raise
        finally:
            if lock is not None:
                lock.close()

    def first_sync(self, result):
        """An empty node: one stream of the whole tree, no manifest round trip."""
        os.mkdir(self.staging, 0o700)
        index = os.path.join(self.module.tmpdir, 'extracted.txt')
        t0 = time.time()
        session = self.session('tar', send=False)
        try:
            session.extract(extract_argv(self.tar_bin, self.staging, index))
        finally:
            session.close()
            self.bytes += session.bytes
        self.timings['transfer'] = round(time.time() - t0, 3)
        with open(index, 'rb') as f:
            listing = f.read()
        t0 = time.time()
        self.swap()
        self.timings['swap'] = round(time.time() - t0, 3)
        result.update(changed=True, method='full', files_changed=listing.count(b'\n'))
        if self.module._diff:
            names = sorted(_member_name(_text(line)) for line in listing.split(b'\n') if line.strip())
            result['changed_paths'] = describe_changes(names, [], {}, {}, self.module.params['diff_max_paths'])
        return self.finish(result)

    def compare_and_sync(self, result):
        """Compare both manifests over one ssh session; when they differ, stage, fetch what differs, swap."""
        check = self.module.check_mode
        exists = os.path.isdir(self.dest)
        t0 = time.time()
        # this node's tree is read (find, another process) while the ssh connection is made and the master
        # reads its own
        local = {}
        scanner = None
        previous = None
        if exists and not check and self.recyclable():
            # then the previous tree, recycled as the staging tree if something changed (while the master's
            # manifest is still on its way)
            previous = {}
            self.previous_scan = threading.Thread(target=self._scan_tree, args=(self.previous, previous))
        if exists:
            scanner = threading.Thread(target=self._scan_local, args=(local,))
            scanner.start()
        if exists and not check and self.previous and not os.path.lexists(self.previous):
            # No previous tree to recycle (the last run was a first sync): every later sync needs a
            # second tree to build on, so make it now, a hard-linked copy of this one, while the
            # comparison runs. A sync uses it as its staging tree; a no-op run keeps it as the
            # previous tree (identical to this one) for the next sync to recycle.
            self.prebuild = threading.Thread(target=self._prebuild)
            self.prebuild.start()
        session = self.session('sync')
        try:
            try:
                src = decode_manifest(session.read_manifest())
            finally:
                self.timings['manifest'] = round(time.time() - t0, 3)
                if scanner is not None:
                    scanner.join()
            if 'error' in local:
                raise SyncError('cannot read %s: %s' % (self.dest, local['error']))
            dest = local.get('manifest', {})
            changed, removed = diff_manifests(src, dest)
            self.timings['compare'] = round(time.time() - t0, 3)
            result['files_changed'] = len(changed) + len(removed)
            if self.module._diff:
                result['changed_paths'] = describe_changes(changed, removed, src, dest,
                                                           self.module.params['diff_max_paths'])
            if not changed and not removed:
                session.end()
                if self.previous_scan is not None:
                    self.previous_scan.join()
                if self.prebuild is not None:
                    t0 = time.time()
                    if self._prebuilt():
                        os.rename(self.staging, self.previous)
                    self.timings['stage'] = round(time.time() - t0, 3)
                return self.finish(result)
            result.update(changed=True, method='incremental' if exists else 'full')
            if check:
                session.end()
                return self.finish(result)
            t0 = time.time()
            names = self.prepare_staging(session, src, dest, changed, removed, local.get('excluded', []), previous)
            result['staging_from'] = self.staging_from
            self.timings['stage'] = round(time.time() - t0, 3)
            t0 = time.time()
            if names:
                session.extract(extract_argv(self.tar_bin, self.staging))
            else:
                session.end()
            self.timings['transfer'] = round(time.time() - t0, 3)
            t0 = time.time()
            result['previous_path'] = self.swap()
            self.timings['swap'] = round(time.time() - t0, 3)
            return self.finish(result)
        finally:
            session.close()
            self.bytes += session.bytes

    def recyclable(self):
        """Whether the previous tree can become the staging tree (same file system, no excluded folder in it)."""
        prev = self.previous
        return bool(prev and os.path.isdir(prev) and not os.path.islink(prev)
                    and os.lstat(prev).st_dev == os.lstat(self.dest).st_dev
                    and not find_excluded_dirs(prev, self.patterns))

    def _prebuild(self):
        try:
            link_copy(self.dest, self.staging, self.patterns, self.module.run_command, self.cp_bin)
            self.prebuilt_ok = True
        except (OSError, SyncError) as e:
            self.prebuild_error = e

    def _prebuilt(self):
        """Wait for the hard-linked copy made during the comparison; whether it is usable."""
        self.prebuild.join()
        if self.prebuilt_ok:
            return True
        self.module.warn('could not prepare the hard-linked staging copy (%s); making it again' % self.prebuild_error)
        self.remove_old(self.staging)
        self.prebuild = None
        return False

    def _scan_local(self, out):
        self._scan_tree(self.dest, out)
        if self.previous_scan is not None:
            self.previous_scan.start()

    def _scan_tree(self, root, out):
        try:
            out['manifest'], out['excluded'] = tree_manifest(root, self.patterns, self.find_bin)
        except OSError as e:
            out['error'] = e

    def _previous_manifest(self, previous):
        """The previous tree's manifest read during the comparison, or None when it cannot be recycled."""
        if previous is None:
            return None, None
        self.previous_scan.join()
        if 'error' in previous:
            self.module.warn('cannot read the previous tree %s (%s); making a hard-linked copy instead'
                             % (self.previous, previous['error']))
            return None, None
        return previous['manifest'], previous['excluded']

    def prepare_staging(self, session, src, dest, changed, removed, excluded, previous=None):
        """Build the staging tree and ask the master for what it lacks; return the names asked for.

        Steady state: the previous tree (the state before the last sync, sharing unchanged files
        with the live tree through hard links) is recycled as the staging tree, so a sync writes
        only what differs from it instead of linking and later deleting every file of the tree.
        Otherwise the staging tree starts as a hard-linked copy of the live tree.
        Files are never written through a hard link: every entry that differs is deleted first and
        extracted as a new inode. The request goes to the master before the tree is prepared, so
        its archive is on its way meanwhile.
        """
        base, stale = self._previous_manifest(previous)
        if base is not None:
            names, gone = diff_manifests(src, base)
            session.request(names)
            os.rename(self.previous, self.staging)
            self.staging_from = 'previous'
            for rel in paths_to_clear(names, gone, src, base):
                remove_entry(os.path.join(self.staging, rel))
            # excluded files come from the live tree (hard links), as in a linked copy
            for rel, _is_dir in sorted(stale, reverse=True):
                remove_entry(os.path.join(self.staging, rel))
            for rel, is_dir in excluded:
                target = os.path.join(self.staging, rel)
                if not is_dir and not os.path.lexists(target) and os.path.isdir(os.path.dirname(target)):
                    os.link(os.path.join(self.dest, rel), target, follow_symlinks=False)
            return names
        session.request(changed)
        self.staging_from = 'linked-copy'
        if self.prebuild is None or not self._prebuilt():
            link_copy(self.dest, self.staging, self.patterns, self.module.run_command, self.cp_bin)
        for rel in paths_to_clear(changed, removed, src, dest):
            remove_entry(os.path.join(self.staging, rel))
        return changed

    def finish(self, result):
        result['timings'] = self.timings
        result['bytes_transferred'] = self.bytes
        result['seconds'] = round(time.time() - self.started, 3)
        if result['changed'] and result['method'] == 'full' and not self.module.check_mode:
            result['previous_path'] = None
        if self.module._diff and 'changed_paths' in result:
            result['diff'] = dict(prepared='\n'.join(result['changed_paths']) + '\n')
        return result


def _member_name(name):
    """A name from tar's listing of a whole-tree stream ("./", "./apps/x/") as a manifest path."""
    name = name.rstrip('/')
    if name in ('', '.'):
        return '.'
    return name[2:] if name.startswith('./') else name


def _text(b):
    if isinstance(b, bytes):
        return b.decode('utf-8', 'replace')
    return b or ''
