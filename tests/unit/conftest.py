# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup of the unit tests.

Makes ``ansible_collections.nextcloud_ha.cluster`` importable from this
checkout (``collections/ansible_collections/nextcloud_ha/cluster`` links back
to the repository root) and the helpers in this directory importable.
"""

import os
import sys

_UNIT = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_UNIT))

for _path in (os.path.join(_ROOT, 'collections'), _UNIT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# The fixture behind php_helpers.needs_php.
from php_helpers import php_required  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
