# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Load a program the roles or CI ship as a file without a .py name (a role's files/ script) as a module."""

from __future__ import absolute_import, division, print_function

import importlib.machinery
import importlib.util


def load_script(path, name):
    """The module that executing the Python file at ``path`` makes, named ``name``."""
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
