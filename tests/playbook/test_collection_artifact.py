# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The built collection works without the checkout.

``ansible-galaxy collection build`` makes the tarball from this checkout, ``ansible-galaxy collection install``
puts it into an empty collections path, and everything after that runs from an empty working directory with its own
ansible.cfg and ``ANSIBLE_COLLECTIONS_PATH`` pointing only at that path (plus the collections bundled with the
venv's ``ansible`` package, which ansible-core always scans): the checkout's ``collections/`` link, ``roles/`` and
ansible.cfg cannot be used. Against the example inventory shipped inside the tarball, every playbook of the
collection passes ``--syntax-check`` (which loads every role and imported task file), and ``ansible-doc`` renders
every module, filter and role.
"""

from __future__ import absolute_import, division, print_function

import glob
import importlib.util
import os
import re
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FQCN = 'nextcloud_ha.cluster'

# Top-level entries of the checkout that must never be in the tarball: development tooling, the Nextcloud test
# stand-in (under tests/), caches, the venv, and the development tool chain's pins.
FORBIDDEN_TOP = ('lab', 'molecule', 'tests', '.venv', '.cache', '.ci', '.git', '.ansible', '.hypothesis',
                 '.pytest_cache', 'collections', 'context', 'Makefile', 'ansible.cfg', 'requirements.txt')


def _names(pattern):
    return sorted(os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, pattern))
                  if not os.path.basename(path).startswith('_'))


def _filter_names():
    """Every filter the checkout's filter plugins register (FilterModule().filters())."""
    names = []
    for path in glob.glob(os.path.join(ROOT, 'plugins', 'filter', '*.py')):
        if os.path.basename(path).startswith('_'):
            continue
        spec = importlib.util.spec_from_file_location('_artifact_filter_' + os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names.extend(module.FilterModule().filters())
    return sorted(names)


MODULES = _names('plugins/modules/*.py')
FILTERS = _filter_names()
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(path)))
               for path in glob.glob(os.path.join(ROOT, 'roles', '*', 'meta', 'main.yml')))
PLAYBOOKS = _names('playbooks/*.yml')


def _run(command, cwd, env, timeout=120):
    proc = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    assert proc.returncode == 0, '%s failed (%d):\n%s' % (' '.join(command), proc.returncode, proc.stdout)
    return proc.stdout


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    """Build the tarball and install it into an empty collections path; returns paths and an isolated env."""
    base = tmp_path_factory.mktemp('artifact')
    build_dir, collections, workdir = (str(base / name) for name in ('build', 'collections', 'work'))
    for path in (build_dir, collections, workdir):
        os.mkdir(path)
    env = {key: value for key, value in os.environ.items() if not key.startswith('ANSIBLE_')}
    with open(os.path.join(workdir, 'ansible.cfg'), 'w') as handle:
        handle.write('[defaults]\ncollections_path = %s\nroles_path = %s\n' % (collections, os.path.join(workdir, 'roles')))
    env.update({
        'ANSIBLE_CONFIG': os.path.join(workdir, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': collections,
        'ANSIBLE_ROLES_PATH': os.path.join(workdir, 'roles'),
        'ANSIBLE_LOCAL_TEMP': os.path.join(workdir, 'tmp'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'PATH': BIN + os.pathsep + env.get('PATH', ''),
    })
    _run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', build_dir, ROOT], workdir, env)
    tarballs = glob.glob(os.path.join(build_dir, 'nextcloud_ha-cluster-*.tar.gz'))
    assert len(tarballs) == 1, tarballs
    _run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '--no-deps', '-p', collections,
          tarballs[0]], workdir, env)
    installed = os.path.join(collections, 'ansible_collections', 'nextcloud_ha', 'cluster')
    assert os.path.isfile(os.path.join(installed, 'MANIFEST.json'))
    return {'tarball': tarballs[0], 'installed': installed, 'collections': collections, 'workdir': workdir, 'env': env}


def test_plugins_and_roles_found():
    """The lists below are read from the checkout; an empty one would make the other tests pass vacuously."""
    assert 'config_php' in MODULES and 'codebase_sync' in MODULES
    assert 'php_value' in FILTERS
    assert 'nextcloud' in ROLES and 'site' in PLAYBOOKS


def test_tarball_leaves_out_development_tooling(artifact):
    with tarfile.open(artifact['tarball']) as tar:
        members = tar.getnames()
    tops = set(name.split('/', 1)[0] for name in members)
    assert not tops & set(FORBIDDEN_TOP), sorted(tops & set(FORBIDDEN_TOP))
    assert not [name for name in members if re.search(r'(^|/)(standin|__pycache__)(/|$)|\.pyc$', name)]
    expected = (['MANIFEST.json', 'FILES.json', 'meta/runtime.yml', 'README.md', 'bindep.txt', 'requirements.yml',
                 'inventories/example/hosts.yml', 'inventories/example/group_vars/all/vars.yml',
                 'inventories/example/group_vars/all/vault.yml']
                + ['plugins/modules/%s.py' % name for name in MODULES]
                + ['playbooks/%s.yml' % name for name in PLAYBOOKS]
                + ['roles/%s/meta/argument_specs.yml' % name for name in ROLES])
    assert sorted(set(expected) - set(members)) == []


def test_only_the_installed_copy_is_visible(artifact):
    out = _run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', FQCN], artifact['workdir'], artifact['env'])
    locations = re.findall(r'^# (\S+)$', out, re.MULTILINE)
    assert locations == [os.path.join(artifact['collections'], 'ansible_collections')], out


def test_every_playbook_passes_syntax_check_from_the_artifact(artifact):
    inventory = os.path.join(artifact['installed'], 'inventories', 'example')
    playbooks = ['%s.%s' % (FQCN, name) for name in PLAYBOOKS]
    out = _run([os.path.join(BIN, 'ansible-playbook'), '--syntax-check', '-i', inventory] + playbooks,
               artifact['workdir'], artifact['env'])
    for name in PLAYBOOKS:
        assert 'playbook: %s' % os.path.join(artifact['installed'], 'playbooks', name + '.yml') in out, out
    assert not re.search(r'^\[ERROR\]', out, re.MULTILINE), out


def test_ansible_doc_renders_every_plugin_and_role(artifact):
    doc = os.path.join(BIN, 'ansible-doc')
    checks = [('module', 'MODULE', MODULES), ('filter', 'FILTER', FILTERS), ('role', 'ROLE:', ROLES)]
    for plugin_type, header, names in checks:
        out = _run([doc, '-t', plugin_type] + ['%s.%s' % (FQCN, name) for name in names],
                   artifact['workdir'], artifact['env'])
        assert not re.search(r'^\[(WARNING|ERROR)\]', out, re.MULTILINE), out
        for name in names:
            # Each header names the file it was read from: the installed copy, never the checkout.
            match = re.search(r'^> %s \*?%s\.%s\*? \((\S+)\)' % (re.escape(header), FQCN, name), out, re.MULTILINE)
            assert match, '%s %s not rendered:\n%s' % (plugin_type, name, out)
            assert match.group(1).startswith(artifact['installed']), match.group(0)
