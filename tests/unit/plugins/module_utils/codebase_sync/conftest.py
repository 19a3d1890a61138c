# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the codebase_sync unit tests."""

import os

import pytest


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'tree'
    (root / 'apps' / 'files').mkdir(parents=True)
    (root / 'config').mkdir()
    (root / 'data' / 'admin').mkdir(parents=True)
    (root / 'index.php').write_text('<?php\n')
    (root / 'apps' / 'files' / 'app.php').write_text('x' * 100)
    (root / 'config' / 'config.php').write_text('<?php $CONFIG = [];\n')
    (root / 'config' / 'node.config.php').write_text('<?php\n')
    (root / 'data' / 'admin' / 'f.txt').write_text('secret')
    os.symlink('apps/files', str(root / 'link'))
    os.utime(str(root / 'index.php'), (1000000000, 1000000000))
    return root


@pytest.fixture
def many_cpus(monkeypatch):
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
