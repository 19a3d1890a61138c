# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role exporters (issue #24): its files rendered by the real Ansible from the role's own templates, defaults and
vars, and the cluster facts' rules: every exporter on the host's cluster address and its port of
cluster_facts_metrics_ports (never 0.0.0.0), the Redis password only in the environment file."""

import os
import re

import pytest

from ansible_runner import ROOT, run_play, run_tasks

ROLES = os.path.join(ROOT, 'roles')
TEMPLATES = os.path.join(ROLES, 'exporters', 'templates')
FILES = {
    'node': 'etc/default/prometheus-node-exporter.j2',
    'postgres': 'etc/default/prometheus-postgres-exporter.j2',
    'pgbouncer': 'etc/prometheus-pgbouncer-exporter.conf.j2',
    'pgbouncer_go': 'etc/default/prometheus-pgbouncer-exporter.j2',
    'pgbouncer_dropin': 'etc/systemd/system/prometheus-pgbouncer-exporter.service.d/nextcloud-ha.conf.j2',
    'redis': 'etc/default/prometheus-redis-exporter.j2',
    'sentinel_unit': 'etc/systemd/system/prometheus-redis-exporter-sentinel.service.j2',
    'glusterfs': 'etc/systemd/system/nextcloud-ha-glusterfs-metrics.service.j2',
    'pgbackrest_service': 'etc/systemd/system/nextcloud-ha-pgbackrest-metrics.service.j2',
    'pgbackrest_timer': 'etc/systemd/system/nextcloud-ha-pgbackrest-metrics.timer.j2',
}


def _render(tmp_path, address='10.0.0.5', ports=None, **facts):
    tasks = [
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'cluster_facts', 'vars', 'main.yml')}},
        {'ansible.builtin.set_fact': dict({'cluster_facts_addresses': {'localhost': address},
                                           'cluster_facts_db_port': '{{ _cluster_facts_db_port }}',
                                           'cluster_facts_redis_port': '{{ _cluster_facts_redis_port }}'},
                                          **({'nextcloud_ha_metrics_ports': ports} if ports else {}))},
        {'ansible.builtin.set_fact': {'cluster_facts_metrics_ports': '{{ _cluster_facts_metrics_ports }}',
                                      'cluster_facts_exporter_user': '{{ _cluster_facts_exporter_user }}',
                                      'cluster_facts_postgres_port': '{{ _cluster_facts_postgres_port }}',
                                      'cluster_facts_monitoring_redis_user': '{{ _cluster_facts_monitoring_redis_user }}',
                                      'cluster_facts_pgbackrest_host': '{{ _cluster_facts_pgbackrest_host }}',
                                      'cluster_facts_pgbackrest_user': '{{ _cluster_facts_pgbackrest_user }}',
                                      'cluster_facts_pgbackrest_stanza': '{{ _cluster_facts_pgbackrest_stanza }}'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'exporters', 'defaults', 'main.yml')}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'exporters', 'vars', 'main.yml')}},
        {'ansible.builtin.set_fact': dict({'exporters_redis_password': 'monitor-secret-0123',
                                           '_exporters_redis_target': 'redis://127.0.0.1:6379',
                                           '_exporters_redis_listen': "{{ _exporters_host }}:{{ exporters_ports['redis'] }}"},
                                          **facts)},
    ]
    for name, src in sorted(FILES.items()):
        tasks.append({'ansible.builtin.template': {'src': os.path.join(TEMPLATES, src),
                                                   'dest': os.path.join(str(tmp_path), name), 'mode': '0600'}})
    results = run_tasks(tmp_path, tasks)
    assert not any(r.get('failed') for r in results), results
    rendered = {}
    for name in FILES:
        with open(os.path.join(str(tmp_path), name)) as handle:
            rendered[name] = handle.read()
    return rendered


def _assignments(text):
    return dict(line.split('=', 1) for line in text.splitlines() if '=' in line and not line.startswith('#'))


def test_every_exporter_listens_on_the_cluster_address_at_the_contracts_port(tmp_path):
    files = _render(tmp_path)
    assert _assignments(files['node'])['ARGS'] == (
        '"--web.listen-address=10.0.0.5:9100 --collector.textfile.directory=/var/lib/prometheus/node-exporter"')
    assert _assignments(files['postgres']) == {
        'DATA_SOURCE_NAME': "'user=prometheus host=/run/postgresql port=5432 dbname=postgres'",
        'ARGS': '"--web.listen-address=10.0.0.5:9187"'}
    conf = dict(line.split(' = ', 1) for line in files['pgbouncer'].splitlines() if ' = ' in line and line[0] != '#')
    assert conf == {'host': '10.0.0.5', 'port': '9127', 'pgbouncer-host': '/var/run/postgresql',
                    'pgbouncer-port': '6432', 'pgbouncer-user': 'prometheus'}
    assert '--web.listen-address=10.0.0.5:9127 ' in files['pgbouncer_go']
    assert _assignments(files['redis'])['ARGS'] == '"-web.listen-address=10.0.0.5:9121 -config-command=-"'
    for name, text in files.items():
        assert text.startswith('#'), name  # ansible_managed first
        assert '0.0.0.0' not in text, name


def test_the_redis_password_is_only_in_the_environment(tmp_path):
    values = _assignments(_render(tmp_path)['redis'])
    assert values['REDIS_PASSWORD'] == "'monitor-secret-0123'"
    assert values['REDIS_USER'] == "'monitor'"
    assert 'monitor-secret' not in values['ARGS']


def test_an_ipv6_address_in_brackets_and_the_inventorys_ports(tmp_path):
    files = _render(tmp_path, address='fd00::5', ports={'node': 19100, 'redis': 16121})
    assert '--web.listen-address=[fd00::5]:19100 ' in files['node']
    assert '-web.listen-address=[fd00::5]:16121 ' in files['redis']
    assert '--web.listen-address=[fd00::5]:9187"' in files['postgres']  # the other ports stay the contract's


def test_the_pgbouncer_exporter_runs_as_the_stats_user(tmp_path):
    dropin = _render(tmp_path)['pgbouncer_dropin']
    assert 'User=prometheus' in dropin
    assert 'ExecStart=\nExecStart=/usr/bin/python3 /usr/local/lib/nextcloud-ha/pgbouncer-exporter' in dropin


@pytest.mark.parametrize('volumes,expected', [([], '--output /var/lib/prometheus/node-exporter/nextcloud_ha_glusterfs.prom\n'),
                                              (['nextcloud', 'other'], 'nextcloud_ha_glusterfs.prom nextcloud other\n')])
def test_the_glusterfs_metrics_service(tmp_path, volumes, expected):
    unit = _render(tmp_path, exporters_glusterfs_volumes=volumes)['glusterfs']
    assert 'ExecStart=/usr/bin/python3 /usr/local/lib/nextcloud-ha/glusterfs-metrics ' in unit
    assert expected in unit


@pytest.mark.parametrize('backup,expected', [(None, {'db1': False, 'mon1': False}),
                                             (['mon1'], {'db1': False, 'mon1': True}),
                                             (['mon1', 'db1'], {'db1': False, 'mon1': True})])
def test_the_pgbackrest_metrics_only_on_the_pgbackrest_host(tmp_path, backup, expected):
    """The first host of the backup group is the pgBackRest host (the cluster fact, decided from the inventory); the
    role writes its metrics there and removes them everywhere else; without a backup group there is none."""
    hosts = {'db1': {'ansible_connection': 'local'}, 'mon1': {'ansible_connection': 'local'}}
    inventory = {'all': {'hosts': hosts, 'children': {'monitoring': {'hosts': {'mon1': {}}}}}}
    if backup:
        inventory['all']['children']['backup'] = {'hosts': dict((host, {}) for host in backup)}
    tasks = [
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'cluster_facts', 'vars', 'main.yml')}},
        {'ansible.builtin.set_fact': {'cluster_facts_pgbackrest_host': '{{ _cluster_facts_pgbackrest_host }}'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'exporters', 'vars', 'main.yml')}},
        {'ansible.builtin.debug': {'msg': 'PGBACKREST {{ inventory_hostname }} {{ _exporters_pgbackrest | bool }}'}},
    ]
    run = run_play(tmp_path, inventory, tasks, hosts='all')
    assert run.returncode == 0, run.stdout + run.stderr
    found = dict((host, value == 'True') for host, value in re.findall(r'PGBACKREST (\w+) (True|False)', run.stdout))
    assert found == expected, run.stdout


def test_the_pgbackrest_metrics_service_and_timer(tmp_path):
    files = _render(tmp_path, groups={'backup': ['localhost']}, cluster_facts_pgbackrest_stanza='main',
                    exporters_pgbackrest_interval=600)
    unit = dict(line.split('=', 1) for line in files['pgbackrest_service'].splitlines() if '=' in line
                and not line.startswith('#'))
    assert unit['ExecStart'] == ('/usr/bin/python3 /usr/local/lib/nextcloud-ha/pgbackrest-metrics --output '
                                 '/var/lib/prometheus/node-exporter/nextcloud_ha_pgbackrest.prom --stanza main '
                                 '--user postgres --timeout 120')
    assert unit['Type'] == 'oneshot'
    assert int(unit['TimeoutStartSec']) > 3 * 120  # three attempts of pgbackrest info
    timer = dict(line.split('=', 1) for line in files['pgbackrest_timer'].splitlines() if '=' in line
                 and not line.startswith('#'))
    assert (timer['OnBootSec'], timer['OnUnitActiveSec'], timer['RandomizedDelaySec']) == ('600s', '600s', '30s')
    assert timer['WantedBy'] == 'timers.target'
