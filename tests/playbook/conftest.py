# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup of the playbook tests: tests that drive a real ``ansible-playbook`` run.

Makes ``ansible_collections.nextcloud_ha.cluster`` importable from this
checkout (``collections/ansible_collections/nextcloud_ha/cluster`` links back
to the repository root), the helpers in this directory (``ansible_runner``)
and the ones shared with the unit tests (``php_helpers`` in tests/unit)
importable.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))

for _path in (os.path.join(_ROOT, 'tests', 'unit'), os.path.join(_ROOT, 'collections'), _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# The fixture behind php_helpers.needs_php.
from php_helpers import php_required  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
