# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role documents every variable, and its documented defaults are the real ones.

For each role: every option of every entry point in ``meta/argument_specs.yml`` is set in ``defaults/main.yml`` and
named in a table row of ``README.md``; every variable of ``defaults/main.yml`` is an option of some entry point; and
where ``argument_specs`` gives a default, it is the value of ``defaults/main.yml`` (the role's real default: Ansible
never applies the ``default`` of an argument spec, it only shows it in ``ansible-doc``). A computed default (a
Jinja expression) may be left out of the spec and described in words instead, but never given as prose in
``default``.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.path.basename(path) for path in glob.glob(os.path.join(ROOT, 'roles', '*'))
               if os.path.isfile(os.path.join(path, 'meta', 'argument_specs.yml')))


def _load(role, *parts):
    path = os.path.join(ROOT, 'roles', role, *parts)
    if parts == ('defaults', 'main.yml') and not os.path.exists(path):
        return {}  # a role without variables of its own (postgres_standby)
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _options(role):
    """{option: (entry point, spec)} over every entry point of the role."""
    options = {}
    for entry_point, spec in (_load(role, 'meta', 'argument_specs.yml').get('argument_specs') or {}).items():
        for name, option in ((spec or {}).get('options') or {}).items():
            options.setdefault(name, (entry_point, option))
    return options


def _normalise(value):
    """Strings compared without regard to line folding; containers element by element."""
    if isinstance(value, str):
        return ' '.join(value.split())
    if isinstance(value, dict):
        return dict((key, _normalise(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def _computed(value):
    """A Jinja expression anywhere in the value (a string, or inside a list or mapping)."""
    if isinstance(value, str):
        return '{{' in value or '{%' in value
    if isinstance(value, dict):
        return any(_computed(item) for item in value.values())
    if isinstance(value, list):
        return any(_computed(item) for item in value)
    return False


def _table_text(role):
    with open(os.path.join(ROOT, 'roles', role, 'README.md')) as handle:
        return '\n'.join(line for line in handle.read().splitlines() if line.lstrip().startswith('|'))


def test_roles_found():
    assert len(ROLES) >= 9, ROLES


@pytest.mark.parametrize('role', ROLES)
def test_every_option_is_in_the_readme_table(role):
    table = _table_text(role)
    missing = [name for name in _options(role) if not re.search(r'(?<!\w)%s(?!\w)' % re.escape(name), table)]
    assert missing == [], 'roles/%s/README.md has no table row naming %s' % (role, ', '.join(missing))


@pytest.mark.parametrize('role', ROLES)
def test_every_option_has_a_default_in_defaults_main(role):
    defaults = _load(role, 'defaults', 'main.yml')
    missing = sorted(set(_options(role)) - set(defaults))
    assert missing == [], 'roles/%s/defaults/main.yml does not set %s' % (role, ', '.join(missing))


@pytest.mark.parametrize('role', ROLES)
def test_every_default_is_an_option(role):
    undocumented = sorted(set(_load(role, 'defaults', 'main.yml')) - set(_options(role)))
    assert undocumented == [], 'roles/%s/meta/argument_specs.yml does not describe %s' % (role, ', '.join(undocumented))


@pytest.mark.parametrize('role', ROLES)
def test_documented_defaults_are_the_real_ones(role):
    defaults = _load(role, 'defaults', 'main.yml')
    wrong = []
    every = [(name, entry_point, option)
             for entry_point, spec in (_load(role, 'meta', 'argument_specs.yml').get('argument_specs') or {}).items()
             for name, option in ((spec or {}).get('options') or {}).items()]
    for name, entry_point, option in sorted(every, key=lambda item: item[:2]):
        if name not in defaults:
            continue
        real = defaults[name]
        if 'default' not in option:
            # Allowed only for computed defaults, which the description explains.
            if not _computed(real) and real is not None:
                wrong.append('%s (%s): no default in the spec, defaults/main.yml has %r' % (name, entry_point, real))
            continue
        if _normalise(option['default']) != _normalise(real):
            wrong.append('%s (%s): spec says %r, defaults/main.yml has %r' % (name, entry_point, option['default'], real))
    assert wrong == [], 'roles/%s:\n  %s' % (role, '\n  '.join(wrong))


# The example inventory (inventories/example) is documentation too: its groups are the ones the playbooks target,
# and every variable it sets is one the collection reads, so a misspelt or renamed variable cannot hide in it.
EXAMPLE = os.path.join(ROOT, 'inventories', 'example')


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _inventory_groups(node, found):
    for name, group in ((node or {}).get('children') or {}).items():
        found.add(name)
        _inventory_groups(group, found)
    return found


def _example_vars():
    variables = {}
    for path in sorted(glob.glob(os.path.join(EXAMPLE, 'group_vars', '*', '*.yml'))):
        with open(path) as handle:
            for name, value in (yaml.safe_load(handle) or {}).items():
                variables[name] = (os.path.relpath(path, EXAMPLE), value)
    return variables


def test_example_inventory_has_every_group_the_playbooks_target():
    targeted, created = set(), set()
    for path in glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')):
        with open(path) as handle:
            plays = yaml.safe_load(handle) or []
        for play in plays:
            for pattern in str(play.get('hosts') or '').split(':'):
                targeted.add(re.sub(r'\[.*\]$', '', pattern.strip()))
        for node in _walk(plays):
            if 'ansible.builtin.add_host' in node:
                created.add(node['ansible.builtin.add_host'].get('groups'))
    targeted -= created | {'', 'all', 'localhost'}
    with open(os.path.join(EXAMPLE, 'hosts.yml')) as handle:
        groups = _inventory_groups(yaml.safe_load(handle)['all'], set())
    assert sorted(targeted - groups) == [], 'inventories/example/hosts.yml lacks groups'
    assert {'haproxy', 'webservers', 'redis', 'postgres_primary', 'postgres_standby'} <= targeted


def test_example_inventory_sets_only_variables_the_collection_reads():
    known = set()
    for role in ROLES:
        known.update(_options(role))
    for pattern in ('roles/*/defaults/*.yml', 'roles/*/vars/*.yml', 'roles/*/tasks/*.yml', 'roles/*/templates/**/*', 'playbooks/*.yml'):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if os.path.isfile(path):
                with open(path) as handle:
                    known.update(re.findall(r'\bnextcloud_ha_[a-z0-9_]+', handle.read()))
    variables = _example_vars()
    unknown = sorted(name for name in variables if name not in known and not name.startswith(('vault_', 'ansible_')))
    assert unknown == [], 'inventories/example sets variables no role or playbook reads: %s' % ', '.join(unknown)


def test_example_vault_placeholders_match_their_references():
    variables = _example_vars()
    defined = set(name for name, (path, value) in variables.items() if name.startswith('vault_'))
    assert defined and all(variables[name][0] == os.path.join('group_vars', 'all', 'vault.yml') for name in defined)
    # Placeholders only: an example must never carry a usable secret.
    assert [name for name in defined if variables[name][1] != ''] == []
    referenced = set()
    for name, (path, value) in variables.items():
        if not name.startswith('vault_'):
            referenced.update(re.findall(r'\bvault_[a-z0-9_]+', str(value)))
    assert sorted(defined ^ referenced) == []
