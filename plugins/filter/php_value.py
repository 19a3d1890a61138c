# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: php_value
short_description: Render a value as PHP source, the way Nextcloud writes config.php
version_added: 0.1.0
author:
  - nextcloud_ha.cluster developers (@nextcloud-ha)
description:
  - Renders strings, numbers, booleans, null, lists and mappings (nested as deep as needed) as
    PHP source in the layout of PHP's C(var_export(\)), which is the layout Nextcloud uses for
    C(config.php). The output is what the M(nextcloud_ha.cluster.config_php) module writes for
    the same value.
  - Lists become arrays with the keys V(0), V(1), ...; mapping keys that are decimal integers
    become integer keys, as in PHP.
  - >-
    A mapping with the single key C(__php_expr__) stands for PHP code that is written verbatim,
    for example C({'__php_expr__': "getenv('REDIS_HOST'\)"}). The code must be a single PHP
    expression without comments.
  - Prefer the M(nextcloud_ha.cluster.config_php) module for config.php itself; this filter is
    for templates of other PHP files.
options:
  _input:
    description: The value to render.
    type: raw
    required: true
  level:
    description:
      - Nesting level of the value in the surrounding PHP code. Continuation lines of arrays are
        indented by two spaces per level. Use V(1) for the value of a top-level entry of a
        C($CONFIG = array (...\)) written in Nextcloud's layout.
    type: int
    default: 0
'''

EXAMPLES = r'''
- name: Render a list
  ansible.builtin.debug:
    msg: "{{ ['cloud.example.org', '10.0.0.21'] | nextcloud_ha.cluster.php_value }}"
    # array (
    #   0 => 'cloud.example.org',
    #   1 => '10.0.0.21',
    # )

- name: Scalars
  ansible.builtin.debug:
    msg: "{{ 'it''s' | nextcloud_ha.cluster.php_value }} {{ 1.5 | nextcloud_ha.cluster.php_value }} {{ none | nextcloud_ha.cluster.php_value }}"
    # 'it\'s' 1.5 NULL

- name: A PHP expression
  ansible.builtin.debug:
    msg: "{{ {'__php_expr__': '\\RedisCluster::FAILOVER_ERROR'} | nextcloud_ha.cluster.php_value }}"
    # \RedisCluster::FAILOVER_ERROR

# In a template of a PHP file:
#   $CONFIG = array (
#     'redis' => {{ redis_settings | nextcloud_ha.cluster.php_value(level=1) }},
#   );
'''

RETURN = r'''
_value:
  description: PHP source of the value.
  type: str
'''

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import PhpConfigError, php_value as _php_value


def php_value(value, level=0):
    """Render ``value`` as PHP source in var_export layout."""
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise AnsibleFilterError('php_value: level must be a non-negative integer, got %r' % (level,))
    try:
        return _php_value(value, int(level))
    except PhpConfigError as exc:
        raise AnsibleFilterError('php_value: %s' % to_native(exc))


class FilterModule(object):
    """PHP filters of nextcloud_ha.cluster."""

    def filters(self):
        return {
            'php_value': php_value,
        }
