# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The etcd role without servers (issue #21): the preflight's refusal of an etcd group that is not odd and 3 or
more, and the /etc/default/etcd a member gets (with and without TLS), rendered by the real Ansible from the role's own files for an
inventory of local hosts."""

import os
import sys

import pytest

from ansible_runner import ROOT, run_play

ROLE = os.path.join(ROOT, 'roles', 'etcd')


def _play(tmp_path, members, tasks, hosts='localhost'):
    """Runs ``tasks`` on ``hosts`` with an inventory whose etcd group is ``members`` (local connections only)."""
    inventory = {'all': {
        'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
        'hosts': {'localhost': {}},
        'children': {'etcd': {'hosts': {name: {'nextcloud_ha_private_address': '10.0.0.%d' % (30 + i)}
                                        for i, name in enumerate(members)}},
                     'webservers': {'hosts': {'web1': {'nextcloud_ha_private_address': '10.0.0.20'}}}},
    }}
    return run_play(tmp_path, inventory, tasks, hosts, 'etcd unit test')


@pytest.mark.parametrize('members', [[], ['db1', 'db2'], ['db1', 'db2', 'redis1', 'redis2']])
def test_an_etcd_group_not_odd_or_under_three_is_refused(tmp_path, members):
    res = _play(tmp_path, members, [{'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.etcd',
                                                                      'tasks_from': 'members.yml'}}])
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "must hold an odd number of hosts, at least 3 (found %d" % len(members) in ' '.join(out.split()), out
    assert 'Nothing was changed' in out


def test_three_members_pass(tmp_path):
    res = _play(tmp_path, ['db1', 'db2', 'redis1'], [{'ansible.builtin.include_role': {
        'name': 'nextcloud_ha.cluster.etcd', 'tasks_from': 'members.yml'}}])
    assert res.returncode == 0, res.stdout + res.stderr


def _render(tmp_path, tls=False):
    dest = os.path.join(str(tmp_path), 'etcd.env')
    res = _play(tmp_path, ['db1', 'db2', 'redis1'], [
        # The members' addresses come from the cluster's facts, as in every playbook of the collection.
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.cluster_facts'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'defaults', 'main.yml')}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'vars', 'main.yml')}},
        {'ansible.builtin.set_fact': {'etcd_tls': tls}},
        {'ansible.builtin.template': {'src': os.path.join(ROLE, 'templates', 'etc', 'default', 'etcd.j2'),
                                      'dest': dest, 'mode': '0644'}},
    ], hosts='db2')
    assert res.returncode == 0, res.stdout + res.stderr
    with open(dest) as handle:
        text = handle.read()
    assert text.startswith('#')  # ansible_managed first
    values = dict(line.split('=', 1) for line in text.splitlines() if line and not line.startswith('#'))
    return text, {key: value.strip('"') for key, value in values.items()}


def test_member_configuration(tmp_path):
    text, values = _render(tmp_path)
    assert values['ETCD_NAME'] == 'db2'
    assert values['ETCD_DATA_DIR'] == '/var/lib/etcd/nextcloud-ha'
    assert values['ETCD_LISTEN_PEER_URLS'] == values['ETCD_INITIAL_ADVERTISE_PEER_URLS'] == 'http://10.0.0.31:2380'
    assert values['ETCD_LISTEN_CLIENT_URLS'] == 'http://10.0.0.31:2379,http://127.0.0.1:2379'
    assert values['ETCD_ADVERTISE_CLIENT_URLS'] == 'http://10.0.0.31:2379'
    assert values['ETCD_INITIAL_CLUSTER'] == ('db1=http://10.0.0.30:2380,db2=http://10.0.0.31:2380,'
                                              'redis1=http://10.0.0.32:2380')
    assert values['ETCD_INITIAL_CLUSTER_STATE'] == 'new'
    assert values['ETCD_INITIAL_CLUSTER_TOKEN'] == 'nextcloud-ha'
    assert int(values['ETCD_ELECTION_TIMEOUT']) >= 5 * int(values['ETCD_HEARTBEAT_INTERVAL'])
    # The marker line that keeps a configured member's data from ever being wiped.
    assert '\n# nextcloud_ha.cluster etcd member db2 ' in text
    assert not [key for key in values if not key.startswith('ETCD_')]


def test_member_configuration_with_tls(tmp_path):
    text, values = _render(tmp_path, tls=True)
    assert values['ETCD_LISTEN_PEER_URLS'] == 'https://10.0.0.31:2380'
    assert values['ETCD_LISTEN_CLIENT_URLS'] == 'https://10.0.0.31:2379,https://127.0.0.1:2379'
    assert 'http://' not in values['ETCD_INITIAL_CLUSTER'] and values['ETCD_INITIAL_CLUSTER'].count('https://') == 3
    assert values['ETCD_CERT_FILE'] == values['ETCD_PEER_CERT_FILE'] == '/etc/etcd/tls/db2.crt'
    assert values['ETCD_KEY_FILE'] == values['ETCD_PEER_KEY_FILE'] == '/etc/etcd/tls/db2.key'
    assert values['ETCD_TRUSTED_CA_FILE'] == values['ETCD_PEER_TRUSTED_CA_FILE'] == '/etc/etcd/tls/ca.crt'
    assert values['ETCD_CLIENT_CERT_AUTH'] == values['ETCD_PEER_CLIENT_CERT_AUTH'] == 'true'
