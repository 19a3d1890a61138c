# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role pgbackrest (issue #25): /etc/pgbackrest.conf rendered by the real Ansible from the role's template, defaults
and vars and the cluster facts' rules, for the backup host and for a member: the repository and its key only on the
backup host, one pgN-host per member there, the member pointing at the backup host; and the preflight's refusals."""

import configparser
import os

import pytest
import yaml

from ansible_runner import ROOT, run_play

ROLES = os.path.join(ROOT, 'roles')
ADDRESSES = {'db1': '10.0.0.31', 'db2': '10.0.0.32', 'bk1': '10.0.0.51'}
KEY = 'a-cipher-pass-of-forty-characters-000000'


def _inventory(**extra):
    """The role's defaults as inventory variables (so that a test's values override them), and three local hosts."""
    hosts = {name: {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}
             for name in ADDRESSES}
    with open(os.path.join(ROLES, 'pgbackrest', 'defaults', 'main.yml')) as handle:
        variables = yaml.safe_load(handle)
    variables.update({'nextcloud_ha_pgbackrest_cipher_pass': KEY}, **extra)
    return {'all': {'hosts': hosts, 'vars': variables,
                    'children': {'postgres': {'hosts': {'db1': {}, 'db2': {}}}, 'backup': {'hosts': {'bk1': {}}},
                                 'webservers': {'hosts': {}}}}}


def _facts_tasks():
    return [
        {'ansible.builtin.setup': {'gather_subset': ['!all', 'min']}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'cluster_facts', 'vars', 'main.yml')}},
        {'ansible.builtin.set_fact': {
            'cluster_facts_addresses': ADDRESSES,
            'cluster_facts_database_hosts': '{{ _cluster_facts_database_hosts }}',
            'cluster_facts_postgres_port': '{{ _cluster_facts_postgres_port }}',
            'cluster_facts_postgres_versions': '{{ _cluster_facts_postgres_versions }}',
            'cluster_facts_pgbackrest_host': '{{ _cluster_facts_pgbackrest_host }}',
            'cluster_facts_pgbackrest_user': '{{ _cluster_facts_pgbackrest_user }}',
            'cluster_facts_pgbackrest_stanza': '{{ _cluster_facts_pgbackrest_stanza }}'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'pgbackrest', 'vars', 'main.yml')}},
    ]


def _render(tmp_path):
    tasks = _facts_tasks() + [
        {'ansible.builtin.template': {'src': os.path.join(ROLES, 'pgbackrest', 'templates', 'pgbackrest.conf.j2'),
                                      'dest': os.path.join(str(tmp_path), '{{ inventory_hostname }}.conf'),
                                      'mode': '0600'}, 'no_log': True}]
    res = run_play(tmp_path, _inventory(), tasks, hosts='db1:db2:bk1')
    assert res.returncode == 0, res.stdout[-3000:]
    assert KEY not in res.stdout
    confs = {}
    for host in ADDRESSES:
        with open(os.path.join(str(tmp_path), host + '.conf')) as handle:
            text = handle.read()
        assert text.startswith('#'), host  # ansible_managed first
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        confs[host] = parser
    return confs


def test_the_backup_host_holds_the_encrypted_repository_and_reaches_every_member(tmp_path):
    conf = _render(tmp_path)['bk1']
    assert conf['global']['repo1-type'] == 'posix' and conf['global']['repo1-path'] == '/var/lib/pgbackrest'
    assert conf['global']['repo1-cipher-type'] == 'aes-256-cbc' and conf['global']['repo1-cipher-pass'] == KEY
    assert conf['global']['repo1-retention-full'] == '2'
    stanza = conf['nextcloud-ha']
    major = stanza['pg1-path'].split('/')[4]
    assert major in ('15', '17'), stanza['pg1-path']
    assert dict(stanza) == {
        'pg1-host': '10.0.0.31', 'pg1-host-user': 'postgres', 'pg1-path': '/var/lib/postgresql/%s/main' % major,
        'pg1-port': '5432',
        'pg2-host': '10.0.0.32', 'pg2-host-user': 'postgres', 'pg2-path': '/var/lib/postgresql/%s/main' % major,
        'pg2-port': '5432'}


def test_a_member_archives_to_the_backup_host_and_never_holds_the_key(tmp_path):
    confs = _render(tmp_path)
    for host in ('db1', 'db2'):
        conf = confs[host]
        assert conf['global']['repo1-host'] == '10.0.0.51' and conf['global']['repo1-host-user'] == 'postgres'
        assert not any(key.startswith('repo1-cipher') or key == 'repo1-path' for key in conf['global'])
        assert dict(conf['nextcloud-ha']) == {'pg1-path': conf['nextcloud-ha']['pg1-path'], 'pg1-port': '5432'}


@pytest.mark.parametrize('extra, message', [
    ({'nextcloud_ha_pgbackrest_cipher_pass': 'tooshort-k3y'}, 'to a key of 20 or more characters'),
    ({'pgbackrest_retention_full': 0}, 'pgbackrest_retention_full must be 1 or more'),
    ({'pgbackrest_full_schedule': '', 'pgbackrest_incr_schedule': 'daily'}, 'need a full schedule'),
])
def test_bad_input_is_refused_by_the_checks(tmp_path, extra, message):
    inventory = _inventory(**extra)
    tasks = _facts_tasks()[1:] + [{'ansible.builtin.include_tasks': os.path.join(ROLES, 'pgbackrest', 'tasks', 'checks.yml')}]
    res = run_play(tmp_path, inventory, tasks, hosts='bk1')
    assert res.returncode != 0
    assert message in ' '.join(res.stdout.split()), res.stdout[-3000:]
    assert 'tooshort-k3y' not in res.stdout


def test_a_backup_host_among_the_database_hosts_is_refused(tmp_path):
    inventory = _inventory()
    inventory['all']['children']['backup'] = {'hosts': {'db2': {}}}
    tasks = _facts_tasks()[1:] + [{'ansible.builtin.include_tasks': os.path.join(ROLES, 'pgbackrest', 'tasks', 'checks.yml')}]
    res = run_play(tmp_path, inventory, tasks, hosts='bk1')
    assert res.returncode != 0
    assert 'exactly one host that is not a PostgreSQL host' in ' '.join(res.stdout.split()), res.stdout[-3000:]
