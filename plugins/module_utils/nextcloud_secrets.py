# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which config.php values are secrets: one rule for every module that shows or compares config.php.

A key is secret when its name looks like one (a password, secret, salt, token, credential or key), at any depth:
``config_php`` masks such values in its diff, ``config_php_drift`` compares them by keyed digest only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

SECRET_NAME = re.compile(r'(pass(word|wd)?|secret|salt|token|credential|^key$|_key$|apikey)', re.IGNORECASE)

# A `'name' => '...'` line of rendered PHP (a single-quoted string value), at any indentation.
_PHP_STRING_ENTRY = re.compile(r"""^(\s*'((?:[^'\\]|\\.)*)' => )'(?:[^'\\]|\\.)*'""", re.MULTILINE)

MASK = '********'


def is_secret_name(name, extra=()):
    """True when `name` (a config.php key, at any depth) names a secret, or is one of `extra`."""
    return name in extra or SECRET_NAME.search('%s' % (name,)) is not None


def holds_secret(name, value, extra=()):
    """True when the key's name, or a name nested in its value, is secret."""
    if is_secret_name(name, extra):
        return True
    if isinstance(value, dict):
        return any(holds_secret(k, v, extra) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_secret('', v, extra) for v in value)
    return False


def mask_php_secrets(text):
    """Rendered config.php text with the string value of every secret-named entry replaced by a mask."""
    def mask(match):
        if is_secret_name(match.group(2)):
            return "%s'%s'" % (match.group(1), MASK)
        return match.group(0)
    return _PHP_STRING_ENTRY.sub(mask, text)
