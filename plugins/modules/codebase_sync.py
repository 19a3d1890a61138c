#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: codebase_sync
short_description: Replicate the Nextcloud tree of the master web node to this node, atomically
version_added: 0.1.0
description:
  - Makes O(dest_path) on the managed node an exact copy of O(src_path) on the master web node
    O(src_host), except for the paths matched by O(exclude), which are left as they are on this node.
  - Compares a manifest of both trees first (path, type, size, mtime, mode, owner, group, link
    target), fetched from the master without transferring the tree. Both sides build it with GNU
    C(find -printf). When nothing differs, nothing is transferred or touched and the result is
    C(changed=false).
  - Streams C(tar) from the master over ssh straight into a staging folder beside O(dest_path)
    (no archive on either disk). A first sync streams the whole tree. Later syncs build the
    staging folder from trees already on the node and stream only the entries that differ into it,
    so an incremental sync moves only what changed and still swaps in a complete tree. The staging
    folder starts as the kept previous tree when there is one (it is recycled, only what differs
    from it is written), else as a hard-linked copy of the current tree, made while the manifests
    are compared.
  - With O(keep_previous=true) and no previous tree yet (right after a first sync), a run that finds
    nothing to change keeps that hard-linked copy as the previous tree (identical to the current one,
    sharing its files), so that the next sync has a tree to recycle. The current tree is not touched
    and the result is C(changed=false).
  - Swaps the staging folder in with C(renameat2(RENAME_EXCHANGE)) (two renames on kernels without
    it), so the web server never sees a half-written tree. On any failure the current tree stays as
    it was and the staging folder is removed.
  - Preserves owners and groups (numeric ids), modes and mtimes.
  - On the master, the ssh key must be limited to the export program (a forced command, see
    notes); the C(nextcloud_ha.cluster.nc_sync) role sets this up.
options:
  src_host:
    description:
      - Address or name of the master web node to copy from.
    type: str
    required: true
  src_path:
    description:
      - The tree on the master. Give the real folder, not a symlink to it (a symlink is resolved on
        the master).
    type: path
    required: true
  dest_path:
    description:
      - The tree on this node. When it is a symlink (for example C(/var/www/nextcloud) pointing to
        C(/var/www/nextcloud-32.0.2)), the folder it points to is replaced and the symlink stays.
      - Must not be empty, C(/) or a system directory such as C(/var) or C(/var/www). Its parent
        directory must exist.
    type: path
    required: true
  ssh_user:
    description:
      - User on the master whose authorized key runs the export program.
    type: str
    default: ncsync
  ssh_key:
    description:
      - Private key file on this node used to log in to the master.
    type: path
    default: /etc/nextcloud-sync/id_ed25519
  ssh_port:
    description:
      - ssh port of the master.
    type: int
    default: 22
  known_hosts:
    description:
      - File with the pinned host key(s) of the master. Host keys are always checked
        (C(StrictHostKeyChecking=yes)); without this option ssh's default known_hosts files are used.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the ssh connection to the master.
    type: int
    default: 10
  exclude:
    description:
      - Paths relative to the tree that are neither copied nor deleted, for example V(data/) or
        V(config/node.config.php). They keep their state on this node.
      - Patterns are anchored at the tree root. C(*), C(?) and C([...]) match inside one path
        component, a component C(**) matches any number of components, a trailing C(/) matches
        directories only. An excluded directory is excluded with all its contents.
      - Excluded files stay in the new tree (hard links). Excluded directories are moved (renamed)
        into the new tree right after the swap.
    type: list
    elements: str
    default: []
  keep_previous:
    description:
      - Keep the tree that was replaced as O(previous_path), for a rollback. The previous tree
        shares unchanged files with the current one (hard links), so it costs little space.
      - The previous tree is also what the next sync starts from, so keeping it makes later syncs
        cheaper, as they write only what differs instead of linking and deleting every file of the tree.
        A failed sync may consume it (it was being turned into the new tree).
      - When V(false), the old tree is deleted after the swap.
    type: bool
    default: true
  previous_path:
    description:
      - Where the replaced tree is kept. Default is the real O(dest_path) folder with C(.previous)
        appended. It must be on the same file system as O(dest_path).
    type: path
  diff_max_paths:
    description:
      - In diff mode, the most changed paths listed.
    type: int
    default: 200
notes:
  - Runs as root on the target (C(become=true)) because it sets owners and groups.
  - "Ownership is compared and restored by numeric uid/gid, so users such as C(www-data) must have
    the same ids on all web nodes (they do on Debian)."
  - Directory mtimes are not compared (they change whenever an entry is added or removed), nor are
    ACLs or extended attributes carried over.
  - "The master must run the export program, which is the file C(plugins/module_utils/codebase_sync.py)
    of this collection, installed by the C(nextcloud_ha.cluster.nc_sync) role and bound to the key in
    C(authorized_keys) as C(restrict,from=\"WEB NODES\",command=\"/usr/bin/python3 EXPORT --allow-root /var/www\").
    It answers only C(manifest), C(sync), C(tar) and C(tar-list) requests for trees under the allowed roots."
  - "One ssh session per sync: the master sends its manifest, the module answers with the paths it
    needs and the master streams them as a C(tar) archive, which goes from ssh's output straight
    into C(tar -x) (the file descriptor is handed over, no byte passes through Python). Two
    processes that talk to each other are more than C(run_command) can run, so the module_utils
    code starts them with C(subprocess), every value as its own argv element and no shell; the
    module fails when either ssh (the export program's status comes back as ssh's) or tar exits
    non-zero."
  - The remote command that ssh sends is built from C(shlex.quote)d words; the export program splits
    it again with C(shlex.split) and never passes it to a shell.
  - Check mode fetches the master's manifest and reports what would change; it writes nothing.
  - If a node runs Nextcloud itself and Nextcloud rewrites C(config/config.php) in place, the previous
    tree's copy (a hard link) changes with it. Keep node-specific values in an excluded
    C(config/*.config.php) file or re-apply them after the sync.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Returns a bounded list of added (C(+)), changed (C(~)) and removed (C(-)) paths.
  platform:
    platforms: posix
seealso:
  - module: ansible.posix.synchronize
    description: >-
      Not used: rsync updates the live tree file by file, so the web server sees a half-updated tree
      and an interrupted run leaves a mix of versions; rsync would also have to be allowed as the
      command of the master's key (rsync's server side accepts arbitrary paths and options), whereas
      this module's key may only run a read-only export of one tree. synchronize also runs from the
      controller (push/pull through the controller's ssh), not node to node with a pinned key.
  - module: nextcloud_ha.cluster.config_php
    description: Re-apply per-node values (trusted_domains, ...) after a sync.
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
'''

EXAMPLES = r'''
- name: Replicate the code and configuration of web1
  nextcloud_ha.cluster.codebase_sync:
    src_host: web1.example.org
    src_path: /var/www/nextcloud-32.0.2
    dest_path: /var/www/nextcloud
    ssh_user: ncsync
    ssh_key: /etc/nextcloud-sync/id_ed25519
    known_hosts: /etc/nextcloud-sync/known_hosts
    exclude:
      - data/
      - config/node.config.php
    keep_previous: true
  register: sync

- name: Show what a sync would change, without changing anything
  nextcloud_ha.cluster.codebase_sync:
    src_host: web1.example.org
    src_path: /var/www/nextcloud-32.0.2
    dest_path: /var/www/nextcloud
    exclude: [data/]
  check_mode: true
  diff: true
'''

RETURN = r'''
files_changed:
  description: Number of entries added, changed or removed (would be, in check mode).
  returned: always
  type: int
  sample: 512
bytes_transferred:
  description: Bytes received from the master (manifest and tar stream).
  returned: always
  type: int
  sample: 5300224
seconds:
  description: Wall-clock time of the module's work.
  returned: always
  type: float
  sample: 1.42
previous_path:
  description: Where the replaced tree is kept; null when O(keep_previous=false) or nothing was replaced.
  returned: always
  type: str
  sample: /var/www/nextcloud-32.0.2.previous
dest_real_path:
  description: The folder that holds the tree (O(dest_path) with symlinks resolved).
  returned: always
  type: str
  sample: /var/www/nextcloud-32.0.2
method:
  description: C(none) (nothing to do), C(full) (whole tree streamed into an empty staging folder) or
    C(incremental) (hard-linked staging copy plus the changed entries).
  returned: always
  type: str
  sample: incremental
timings:
  description: Seconds spent in each phase that ran. C(manifest) and C(compare) count from the start of the
    comparison (ssh connection, the master's manifest arrived; both manifests compared), C(stage) (staging
    tree ready), C(transfer) (archive extracted) and C(swap) each on their own.
  returned: always
  type: dict
  sample: {manifest: 0.31, compare: 0.33, stage: 0.05, transfer: 0.33, swap: 0.01}
staging_from:
  description: How the staging tree of an incremental sync started, C(previous) (the kept previous tree,
    recycled) or C(linked-copy) (a hard-linked copy of the current tree).
  returned: when an incremental sync ran
  type: str
  sample: previous
changed_paths:
  description: Bounded list of changes, C(+ path) added, C(~ path) changed, C(- path) removed.
  returned: in diff mode
  type: list
  elements: str
  sample: ["+ apps/myapp/appinfo/info.xml", "~ config/config.php"]
'''

import fcntl
import os
import threading
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync import (
    SyncError,
    decode_manifest,
    describe_changes,
    diff_manifests,
    exchange,
    export_request,
    extract_argv,
    find_excluded_dirs,
    link_copy,
    parse_patterns,
    paths_to_clear,
    remove_entry,
    safe_remove_tree,
    ssh_argv,
    tree_manifest,
    validate_abs_path,
    ExportSession,
)


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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src_host=dict(type='str', required=True),
            src_path=dict(type='path', required=True),
            dest_path=dict(type='path', required=True),
            ssh_user=dict(type='str', default='ncsync'),
            ssh_key=dict(type='path', default='/etc/nextcloud-sync/id_ed25519', no_log=False),
            ssh_port=dict(type='int', default=22),
            known_hosts=dict(type='path'),
            connect_timeout=dict(type='int', default=10),
            exclude=dict(type='list', elements='str', default=[]),
            keep_previous=dict(type='bool', default=True),
            previous_path=dict(type='path'),
            diff_max_paths=dict(type='int', default=200),
        ),
        supports_check_mode=True,
    )
    if os.geteuid() != 0:
        module.fail_json(msg='codebase_sync must run as root (become: true) to keep owners and groups')
    try:
        sync = CodebaseSync(module)
        result = sync.run()
    except SyncError as e:
        module.fail_json(msg=str(e), changed=False)
    except OSError as e:
        module.fail_json(msg='codebase_sync failed, the tree on this node was left as it was: %s' % e, changed=False)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
