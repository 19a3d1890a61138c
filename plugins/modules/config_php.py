#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: config_php
short_description: Edit Nextcloud's config.php safely and idempotently
version_added: 0.1.0
description:
  - Sets and removes top-level keys of a Nextcloud C(config.php) by reading the file as data
    instead of editing it as text, so edits do not depend on the layout of the file.
  - Reads what config.php files really contain, whether Nextcloud or a person wrote them,
    including comments, C([...]) arrays and PHP expressions such as class constants or
    C(getenv('X'\)). Expressions are kept as written.
  - Writes in the layout Nextcloud writes (PHP's C(var_export)). When the file holds no comments
    and no expressions, the result is byte for byte what Nextcloud itself would write for the
    same data. Otherwise entries that did not change are kept exactly as they were, comments
    included, and only changed or new entries are written in Nextcloud's layout (comments inside
    a changed array are lost).
  - Setting values that are already in place does not touch the file at all.
  - Writes atomically (a temporary file in the same directory, then a rename) and keeps owner,
    group and mode of the file. When C(php) is on the C(PATH) of the managed host, the new content
    is checked with C(php -l) first and a file that PHP would not load is never written.
  - Warns about top-level keys that Nextcloud does not know and names the nearest known key,
    for example C(memcache.disributed) (did you mean C(memcache.distributed)?).
options:
  path:
    description:
      - Path of the C(config.php) file, usually C(/var/www/nextcloud/config/config.php).
      - Any other Nextcloud configuration file of the same form (C(config/*.config.php)) works as well.
    type: path
    required: true
  settings:
    description:
      - Top-level keys to set. Each value replaces the old value (see O(merge)).
      - Values may be strings, integers, floats, booleans, null, lists and mappings, nested
        as deep as needed. Lists become PHP arrays with the keys V(0), V(1), ... and mappings
        PHP arrays with their keys; keys that are decimal integers become integer keys, as in PHP.
      - 'To write a PHP expression instead of a value (a class constant, C(getenv(\)), ...),
        give a mapping with the single key C(__php_expr__) and the PHP code as its value, for
        example C({__php_expr__: ''\RedisCluster::FAILOVER_ERROR''}). The code is written verbatim;
        it must be a single PHP expression without comments. This works at any depth.'
      - An expression that is only a literal (C('abc'), C([1, 2])) is taken as that value.
      - Keys compare as PHP does, and values compare with their types, so V(6379) and V('6379')
        differ and setting one replaces the other.
      - V(null) writes C(NULL); to delete a key use O(remove).
    type: dict
    default: {}
  remove:
    description:
      - Top-level keys to delete. Keys that are not present are ignored.
      - A key must not be both in O(settings) and in O(remove).
    type: list
    elements: str
    default: []
  merge:
    description:
      - When V(true), a mapping in O(settings) is merged key by key into the existing array of that
        key, recursively for nested mappings. Keys that are not mentioned keep their values and
        new keys are appended. Lists, scalars and expressions still replace the old value.
      - 'Merging is a way to change single items of a list, for example
        C(trusted_domains: {1: 10.0.0.21}) replaces only the item with key V(1).'
      - When V(false), every value in O(settings) replaces the old value completely.
    type: bool
    default: false
  create:
    description:
      - Create the file when it does not exist (or is empty), starting from an empty configuration.
      - The directory must exist. Without O(mode), a new file gets mode V(0640), as Nextcloud uses.
      - When V(false), a missing file is an error.
    type: bool
    default: false
  backup:
    description:
      - Create a backup file including the timestamp information so you can get the original file
        back if you somehow clobbered it incorrectly.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
  safe_file_operations:
    description: Uses Ansible's strict file operation functions to ensure proper permissions and avoid data corruption.
    support: full
  vault:
    description: Can automatically decrypt Ansible vaulted files.
    support: none
notes:
  - 'The diff shows the whole file before and after, with the values of secret keys (C(dbpassword),
    C(passwordsalt), C(secret), C(password), C(mail_smtppassword), and C(key) and C(secret) inside arrays such as
    C(objectstore)) replaced by C(********). A change to a secret therefore shows in RV(changed_keys), not in the
    diff.'
  - Nextcloud invalidates OPcache for its config files when their modification time changes, so no
    PHP-FPM reload is needed after a change.
  - Do not run this module while Nextcloud itself writes the file (installer, upgrade,
    C(occ config:system:set)); one of the two writes would be lost.
  - Nextcloud itself rewrites config.php (for example during upgrades or C(occ config:system:set)),
    which drops comments. Keep changes in Ansible, not in comments.
  - See C(docs/config_php.md) in the collection for background and more examples.
seealso:
  - name: PHP var_export()
    description: The function Nextcloud uses to write config.php, whose layout this module reproduces.
    link: https://www.php.net/manual/en/function.var-export.php
  - name: Nextcloud configuration parameters
    description: The keys a config.php may contain.
    link: https://docs.nextcloud.com/server/latest/admin_manual/configuration_server/config_sample_php_parameters.html
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
'''

EXAMPLES = r'''
- name: Set trusted domains, Redis locking and Redis connection
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/config.php
    settings:
      trusted_domains:
        - cloud.example.org
        - 10.0.0.21
      memcache.locking: '\OC\Memcache\Redis'
      memcache.distributed: '\OC\Memcache\Redis'
      redis:
        host: redis1
        port: 6379
        timeout: 1.5

- name: Replace only the second trusted domain with this node's address
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/config.php
    merge: true
    settings:
      trusted_domains:
        1: "{{ ansible_host }}"

- name: Add a key to the redis array without repeating the others
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/config.php
    merge: true
    settings:
      redis:
        password: "{{ redis_password }}"
  no_log: true

- name: Use a PHP class constant and an environment variable
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/config.php
    settings:
      redis.cluster:
        seeds: [redis1:7000, redis2:7000, redis3:7000]
        failover_mode:
          __php_expr__: '\RedisCluster::FAILOVER_ERROR'
      dbpassword:
        __php_expr__: "getenv('NC_DB_PASSWORD')"

- name: Remove settings, keep a backup, enforce ownership and mode
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/config.php
    remove:
      - memcache.local
      - debug
    backup: true
    owner: www-data
    group: www-data
    mode: '0640'

- name: Create an additional config file for settings owned by Ansible
  nextcloud_ha.cluster.config_php:
    path: /var/www/nextcloud/config/ha.config.php
    create: true
    owner: www-data
    group: www-data
    settings:
      filelocking.enabled: true
      memcache.locking: '\OC\Memcache\Redis'
'''

RETURN = r'''
changed_keys:
  description: Top-level keys that were set to a new value, added or removed.
  returned: always
  type: list
  elements: str
  sample: [trusted_domains, memcache.locking]
backup_file:
  description: Name of the backup file that was created.
  returned: changed and if O(backup=true)
  type: str
  sample: /var/www/nextcloud/config/config.php.2375.2025-11-25@10:01:02~
diff:
  description: The file before and after the change, when running in diff mode.
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: Content of the file before (empty when it did not exist).
      type: str
      sample: "<?php\n$CONFIG = array (\n  'debug' => true,\n);\n"
    after:
      description: Content of the file after.
      type: str
      sample: "<?php\n$CONFIG = array (\n  'debug' => false,\n);\n"
    before_header:
      description: Path of the file.
      type: str
      sample: /var/www/nextcloud/config/config.php
    after_header:
      description: Path of the file.
      type: str
      sample: /var/www/nextcloud/config/config.php
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.nextcloud_secrets import mask_php_secrets
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import (
    EMPTY_CONFIG,
    PhpConfigError,
    PhpExpr,
    decode,
    edit_config,
    encode,
    parse_config,
)


def _printable(text):
    """Text for diff output: secret values masked; bytes that are not UTF-8 become replacement characters."""
    text = mask_php_secrets(text)
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')


def _key_name(key):
    return key.code if isinstance(key, PhpExpr) else '%s' % (key,)


def _php_lint(module, php, content):
    """Run php -l on the new content (read from stdin); returns an error message or None."""
    rc, out, err = module.run_command([php, '-n', '-l'], data=content, binary_data=True)
    if rc == 0:
        return None
    message = ' '.join(part.strip() for part in (out, err) if part.strip())
    return message.replace('Standard input code', 'the new config.php') or 'php -l failed with rc %d' % rc


def _write_atomically(module, b_path, content):
    b_dir = os.path.dirname(b_path) or b'.'
    # The suffix keeps Nextcloud from loading the temporary file as *.config.php.
    fd, b_tmp = tempfile.mkstemp(prefix=b'.' + os.path.basename(b_path) + b'.', suffix=b'.tmp', dir=b_dir)
    module.add_cleanup_file(b_tmp)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    module.atomic_move(b_tmp, b_path, unsafe_writes=module.params['unsafe_writes'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            settings=dict(type='dict', default={}),
            remove=dict(type='list', elements='str', default=[]),
            merge=dict(type='bool', default=False),
            create=dict(type='bool', default=False),
            backup=dict(type='bool', default=False),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']
    # Write through symbolic links (config.php may link elsewhere) instead of replacing them.
    b_path = os.path.realpath(to_bytes(path, errors='surrogate_or_strict'))
    result = dict(changed=False, path=path, changed_keys=[])

    if os.path.isdir(b_path):
        module.fail_json(msg='%s is a directory, not a config.php' % path, **result)
    exists = os.path.exists(b_path)
    if exists:
        try:
            with open(b_path, 'rb') as handle:
                original = handle.read()
        except (IOError, OSError) as exc:
            module.fail_json(msg='cannot read %s: %s' % (path, to_native(exc)), **result)
        before = decode(original)
        source = before
        if params['create'] and not before.strip():
            source = EMPTY_CONFIG
    elif params['create']:
        parent = os.path.dirname(b_path) or b'.'
        if not os.path.isdir(parent):
            module.fail_json(msg='cannot create %s: the directory %s does not exist' % (path, to_native(parent)), **result)
        original = None
        before = ''
        source = EMPTY_CONFIG
    else:
        module.fail_json(msg='%s does not exist; set create=true to create it' % path, **result)

    try:
        document = parse_config(source)
    except PhpConfigError as exc:
        module.fail_json(msg='%s is not a config.php this module can edit, nothing was changed: %s' % (path, to_native(exc)), **result)
    for key, count in sorted(document.duplicate_keys.items(), key=lambda item: str(item[0])):
        module.warn("%s: key '%s' appears %d times; PHP uses the last value" % (path, _key_name(key), count))

    try:
        edit = edit_config(document, params['settings'], params['remove'], params['merge'])
        content = encode(edit.text)
    except PhpConfigError as exc:
        module.fail_json(msg='%s was not changed: %s' % (path, to_native(exc)), **result)
    for message in edit.warnings:
        module.warn(message)

    changed = original is None or content != original
    result['changed_keys'] = [_key_name(key) for key in edit.changed_keys]

    if changed:
        php = module.get_bin_path('php')
        if php:
            problem = _php_lint(module, php, content)
            if problem:
                module.fail_json(msg='php -l rejects the new content, %s was not changed: %s' % (path, problem), **result)
        if not module.check_mode:
            if params['backup'] and exists:
                result['backup_file'] = module.backup_local(to_native(b_path, errors='surrogate_or_strict'))
            try:
                _write_atomically(module, b_path, content)
            except (IOError, OSError) as exc:
                module.fail_json(msg='cannot write %s: %s' % (path, to_native(exc)), **result)

    if module._diff:
        result['diff'] = dict(
            before_header=path,
            after_header=path,
            before=_printable(before),
            after=_printable(edit.text),
        )

    file_args = module.load_file_common_arguments(params, path=to_native(b_path, errors='surrogate_or_strict'))
    if not exists and file_args.get('mode') is None:
        file_args['mode'] = '0640'
    if module.check_mode and not exists:
        changed = True
    else:
        changed = module.set_fs_attributes_if_different(file_args, changed)

    result['changed'] = changed
    module.exit_json(**result)


if __name__ == '__main__':
    main()
