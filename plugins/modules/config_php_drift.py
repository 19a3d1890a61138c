#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: config_php_drift
short_description: Compare a Nextcloud config.php with a reference node's, key by key, without showing secrets
version_added: 0.2.0
description:
  - Reads the C(config.php) of the managed host the way Nextcloud does (PHP includes the file), so PHP expressions
    such as C(getenv('X'\)) are compared by their values.
  - Without O(reference), returns the file's top-level settings split in two. RV(public) holds the values of the
    keys that are not secret; RV(secret_digests) holds, for every secret key, an HMAC-SHA256 of its value keyed
    with O(nonce), never the value. Run it so on the reference node (the master web node).
  - With O(reference) (and O(reference_secrets)), the reference node's RV(public) and RV(secret_digests), returns
    RV(differences), every top-level key whose value differs, is missing on this host or is only on this host.
    Values are shown for keys that are not secret; for secret keys only the key name is reported.
  - A key is secret when its name, or the name of a key nested in its value, is a password, secret, salt, token or
    credential (C(dbpassword), C(passwordsalt), C(secret), C(mail_smtppassword), C(redis) with a C(password),
    C(objectstore) with a C(key) and C(secret), ...) or is listed in O(secret_keys); on either side.
  - Only reads; never changes anything.
options:
  path:
    description: Path of the C(config.php) to read.
    type: path
    required: true
  php:
    description: The PHP CLI that reads the file.
    type: path
    default: /usr/bin/php
  reference:
    description:
      - The RV(public) settings of the reference node. When omitted, the module reports this host's own settings.
    type: dict
  reference_secrets:
    description:
      - The RV(secret_digests) of the reference node, made with the same O(nonce).
    type: dict
    default: {}
  nonce:
    description:
      - Key of the HMAC that stands for secret values. Use the same random value on the reference node and on the
        compared hosts, a new one for every run.
    type: str
    required: true
  secret_keys:
    description: More key names (at any depth) whose values are secret.
    type: list
    elements: str
    default: []
  ignore:
    description: Top-level keys left out of the comparison.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Compares C(config.php) only; per-node values belong in C(config/node.config.php) (see C(docs/operations.md)).
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
'''

EXAMPLES = r'''
- name: Read the master's config.php (secrets as digests only)
  nextcloud_ha.cluster.config_php_drift:
    path: /var/www/nextcloud/config/config.php
    nonce: "{{ drift_nonce }}"
  delegate_to: web1
  run_once: true
  register: master_config
  no_log: true

- name: Compare this node's config.php with the master's
  nextcloud_ha.cluster.config_php_drift:
    path: /var/www/nextcloud/config/config.php
    nonce: "{{ drift_nonce }}"
    reference: "{{ master_config.public }}"
    reference_secrets: "{{ master_config.secret_digests }}"
  register: drift
'''

RETURN = r'''
public:
  description: The top-level settings of this host that are not secret (without O(reference)).
  returned: when O(reference) is not given
  type: dict
  sample: {loglevel: 2, trusted_domains: [cloud.example.org]}
secret_digests:
  description: For each secret top-level key, an HMAC-SHA256 of its JSON value keyed with O(nonce).
  returned: when O(reference) is not given
  type: dict
drift:
  description: Whether this host's config.php differs from the reference.
  returned: when O(reference) is given
  type: bool
keys:
  description: The top-level keys that differ, sorted.
  returned: when O(reference) is given
  type: list
  elements: str
  sample: [loglevel, mail_smtppassword]
differences:
  description:
    - One entry per differing key. C(change) is C(differs), C(missing) (only on the reference) or C(extra) (only on
      this host). C(reference) and C(node) hold the values, for keys that are not secret only.
  returned: when O(reference) is given
  type: list
  elements: dict
  sample: [{key: loglevel, change: differs, secret: false, reference: 2, node: 0},
           {key: dbpassword, change: differs, secret: true}]
'''

import hashlib
import hmac
import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.nextcloud_secrets import holds_secret

PHP_DUMP = ('$CONFIG = []; include $argv[1]; '
            'echo json_encode($CONFIG, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_SLASHES);')


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'))


def digest(nonce, value):
    return hmac.new(to_bytes(nonce), to_bytes(canonical(value)), hashlib.sha256).hexdigest()


def split(config, nonce, extra, ignore):
    public, secrets = {}, {}
    for key, value in config.items():
        if key in ignore:
            continue
        if holds_secret(key, value, extra):
            secrets[key] = digest(nonce, value)
        else:
            public[key] = value
    return public, secrets


def compare(ref_public, ref_secrets, public, secrets):
    differences = []
    ref_keys = set(ref_public) | set(ref_secrets)
    keys = set(public) | set(secrets)
    for key in sorted(ref_keys | keys):
        secret = key in ref_secrets or key in secrets
        if key not in keys:
            change = 'missing'
        elif key not in ref_keys:
            change = 'extra'
        elif secret:
            if key in ref_secrets and key in secrets and hmac.compare_digest(ref_secrets[key], secrets[key]):
                continue
            change = 'differs'
        elif canonical(ref_public[key]) == canonical(public[key]):
            continue
        else:
            change = 'differs'
        entry = {'key': key, 'change': change, 'secret': secret}
        if not secret:
            if key in ref_public:
                entry['reference'] = ref_public[key]
            if key in public:
                entry['node'] = public[key]
        differences.append(entry)
    return differences


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            php=dict(type='path', default='/usr/bin/php'),
            reference=dict(type='dict'),
            reference_secrets=dict(type='dict', default={}, no_log=True),
            nonce=dict(type='str', required=True, no_log=False),
            secret_keys=dict(type='list', elements='str', default=[], no_log=False),
            ignore=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rc, out, err = module.run_command([p['php'], '-r', PHP_DUMP, p['path']], cwd='/')
    if rc != 0:
        module.fail_json(msg='PHP could not read %s (rc %d): %s' % (p['path'], rc, err.strip() or out.strip()[:200]))
    try:
        config = json.loads(out) if out.strip() else {}
    except ValueError:
        module.fail_json(msg='PHP did not print the configuration of %s as JSON' % p['path'])
    if isinstance(config, list):  # an empty PHP array
        config = {}
    public, secrets = split(config, p['nonce'], set(p['secret_keys']), set(p['ignore']))
    if p['reference'] is None:
        module.exit_json(changed=False, public=public, secret_digests=secrets)
    differences = compare(p['reference'], p['reference_secrets'] or {}, public, secrets)
    keys = [d['key'] for d in differences]
    module.exit_json(changed=False, drift=bool(differences), keys=keys, differences=differences,
                     msg=('%s differs from the reference in: %s' % (p['path'], ', '.join(keys))) if keys
                     else '%s matches the reference' % p['path'])


if __name__ == '__main__':
    main()
