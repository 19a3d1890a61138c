# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The export program the nc_sync role ships is what .ci/bundle-export makes of module_utils/codebase_sync now.

roles/nc_sync/files/nc_sync_export.py is generated: protocol, patterns, walk, manifest and export in one file, so
the master (plain python3) shares the module's code. A change to those modules without running the script fails
here, and so does a name two of them define (in one file, the later one would silently replace the other).
"""

import ast
import os
import subprocess
import sys

from codebase_sync_helpers import EXPORT, ROOT
from script_helpers import load_script

SCRIPT = os.path.join(ROOT, '.ci', 'bundle-export')


def _bundler():
    return load_script(SCRIPT, 'bundle_export')


def test_the_shipped_export_program_is_the_bundle_of_the_current_sources():
    text, _where = _bundler().bundle()
    with open(EXPORT, encoding='utf-8') as f:
        shipped = f.read()
    assert shipped == text, 'roles/nc_sync/files/nc_sync_export.py is stale: run python3 .ci/bundle-export'


def test_no_two_bundled_modules_define_the_same_name():
    bundler = _bundler()
    _text, where = bundler.bundle()
    assert 'export_main' in where and 'parse_pattern' in where and 'scan_tree' in where
    assert bundler.duplicates(where) == {}


def test_the_bundle_compiles_imports_only_the_standard_library_and_runs():
    with open(EXPORT, encoding='utf-8') as f:
        tree = ast.parse(f.read(), EXPORT)
    compile(tree, EXPORT, 'exec')
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or '').split('.')[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    # as sshd runs it: a malformed request is refused with the usage exit code
    p = subprocess.run([sys.executable, '-I', EXPORT, 'nc-sync-export', 'shell', '/x'], capture_output=True,
                       text=True, check=False, env={'PATH': os.environ.get('PATH', '/usr/bin:/bin')})
    assert p.returncode == 64 and p.stderr.startswith('nc-sync-export: expected "manifest|sync|tar|tar-list')
