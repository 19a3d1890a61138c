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
  - "The master must run the export program, which is the file C(roles/nc_sync/files/nc_sync_export.py)
    of this collection (built from the module's own C(module_utils/codebase_sync) code, so both sides
    compute the manifest alike), installed by the C(nextcloud_ha.cluster.nc_sync) role and bound to the key in
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.client import CodebaseSync
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import SyncError


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
