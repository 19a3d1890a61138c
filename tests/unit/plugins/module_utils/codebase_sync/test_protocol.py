# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What both sides agree on (module_utils/codebase_sync/protocol.py)."""


import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.codebase_sync.protocol import (
    SyncError,
    validate_abs_path,
)


@pytest.mark.parametrize('path', ['', '   ', 'relative/path', '/', '//', '/var/www', '/var/www/', '/etc', '/usr/../etc'])
def test_validate_abs_path_refuses(path):
    with pytest.raises(SyncError):
        validate_abs_path(path, 'dest_path')


def test_validate_abs_path_normalises():
    assert validate_abs_path('/var/www/nextcloud/', 'dest_path') == '/var/www/nextcloud'
