# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The monitoring role without servers (issue #24): the preflight's refusals, and prometheus.yml, alertmanager.yml
and the blackbox modules as the role renders them for an inventory shaped like the lab's, checked with promtool."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_runner import ROOT, run_play

ROLE = os.path.join(ROOT, 'roles', 'monitoring')
GROUPS = {'haproxy': ['lb1', 'lb2'], 'webservers': ['web1', 'web2'], 'redis': ['redis1', 'redis2'],
          'postgres_primary': ['db1'], 'postgres_standby': ['db2'], 'etcd': ['db1', 'db2', 'redis1'],
          'monitoring': ['mon1']}
SECRETS = {'nextcloud_ha_monitoring_password': 'monitoring-secret-1', 'nextcloud_ha_domain': 'cloud.example.org',
           'nextcloud_ha_monitoring_redis_password': 'redis-monitor-secret-2',
           'nextcloud_ha_serverinfo_token': 'serverinfo-token-secret-3'}


def _play(tmp_path, tasks, hosts='localhost', extra=None):
    """Runs ``tasks`` on ``hosts`` with an inventory of local hosts shaped like the lab's."""
    addresses = {}
    for group in GROUPS.values():
        for host in group:
            addresses.setdefault(host, '10.0.0.%d' % (10 + len(addresses)))
    children = {group: {'hosts': {host: {'nextcloud_ha_private_address': addresses[host]} for host in hosts_}}
                for group, hosts_ in GROUPS.items()}
    inventory = {'all': {
        'vars': dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
                     **dict(SECRETS, **(extra or {}))),
        'hosts': {'localhost': {}}, 'children': children}}
    return run_play(tmp_path, inventory, tasks, hosts, 'monitoring test')


def _preflight(tmp_path, **extra):
    return _play(tmp_path, [{'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.monitoring',
                                                              'tasks_from': 'preflight'}}], extra=extra)


def test_preflight_passes_with_the_secrets(tmp_path):
    res = _preflight(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize('name', sorted(k for k in SECRETS if k != 'nextcloud_ha_domain'))
def test_a_monitoring_group_without_a_secret_is_refused(tmp_path, name):
    res = _preflight(tmp_path, **{name: ''})
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    # The check is no_log (the values are secrets): the task's item label names the variable.
    assert name in out, out
    assert SECRETS[name] not in out


def test_an_extra_rule_file_that_is_no_rule_file_is_refused(tmp_path):
    bad = tmp_path / 'mine.rules.yml'
    bad.write_text('alert: not a rule file\n')
    res = _preflight(tmp_path, monitoring_extra_rule_files=[str(bad)])
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    assert 'must be a Prometheus rule file on the controller' in out, out


def test_an_extra_rule_file_promtool_rejects_is_refused_on_the_controller(tmp_path):
    _promtool()
    broken = tmp_path / 'broken.rules.yml'
    broken.write_text('groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: up ==\n')
    res = _preflight(tmp_path, monitoring_extra_rule_files=[str(broken)])
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    assert 'promtool check rules rejects the alert rules of monitoring_extra_rule_files' in out, out
    assert 'Nothing was changed' in out


@pytest.mark.parametrize('name,value', [('nextcloud_ha_serverinfo_token', 'short-token-15ch'[:15]),
                                        ('nextcloud_ha_serverinfo_token', 'a token with spaces inside'),
                                        ('nextcloud_ha_monitoring_redis_password', "it's-a-quote-1"),
                                        ('nextcloud_ha_monitoring_password', 'x' * 73)])
def test_a_secret_the_roles_would_refuse_later_is_refused_first(tmp_path, name, value):
    res = _preflight(tmp_path, **{name: value})
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    assert name in out and value not in out, out


def test_an_extra_rule_file_named_like_the_collections_is_refused(tmp_path):
    name = sorted(os.listdir(os.path.join(ROLE, 'files', 'rules')))[0]
    clash = tmp_path / name
    clash.write_text('groups: []\n')
    res = _preflight(tmp_path, monitoring_extra_rule_files=[str(clash)])
    assert res.returncode != 0, res.stdout + res.stderr
    assert 'whose name no other rule file has' in ' '.join((res.stdout + res.stderr).split())


def _render(tmp_path, **extra):
    """Renders the role's configuration files on mon1 into tmp_path; the rule and password paths point there too."""
    rules = tmp_path / 'rules'
    rules.mkdir()
    for name in os.listdir(os.path.join(ROLE, 'files', 'rules')):
        shutil.copy(os.path.join(ROLE, 'files', 'rules', name), str(rules))
    password = tmp_path / 'password'
    password.write_text('monitoring-secret-1')
    tasks = [
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.cluster_facts'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'defaults', 'main.yml')}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'vars', 'main.yml')}},
        # Above the role's defaults that include_vars loaded (the settings under test).
        {'ansible.builtin.set_fact': dict({'_monitoring_rules_dir': str(rules),
                                           '_monitoring_password_file': str(password), 'role_path': ROLE},
                                          **extra)},
    ]
    for name in ('prometheus.yml', 'alertmanager.yml', 'blackbox.yml'):
        tasks.append({'ansible.builtin.template': {
            'src': os.path.join(ROLE, 'templates', 'etc', 'prometheus', name + '.j2'),
            'dest': str(tmp_path / name), 'mode': '0644'}})
    for name in ('prometheus', 'prometheus-alertmanager'):
        tasks.append({'ansible.builtin.template': {
            'src': os.path.join(ROLE, 'templates', 'etc', 'default', name + '.j2'),
            'dest': str(tmp_path / name), 'mode': '0644'}})
    res = _play(tmp_path, tasks, hosts='mon1')
    assert res.returncode == 0, res.stdout + res.stderr
    return {name: (tmp_path / name).read_text() for name in
            ('prometheus.yml', 'alertmanager.yml', 'blackbox.yml', 'prometheus', 'prometheus-alertmanager')}


def _promtool():
    path = shutil.which('promtool')
    if path is None and os.environ.get('CI') == 'true':
        pytest.fail('promtool is missing: `make deps` installs it (Debian package prometheus)')
    if path is None:
        pytest.skip('promtool is not installed (make deps)')
    return path


def test_prometheus_scrapes_every_tier_by_inventory_hostname_and_promtool_accepts_it(tmp_path):
    files = _render(tmp_path)
    text = files['prometheus.yml']
    assert text.startswith('#')  # ansible_managed first
    config = yaml.safe_load(text)
    jobs = {job['job_name']: job for job in config['scrape_configs']}

    def instances(job):
        return sorted(c['labels']['instance'] for c in jobs[job]['static_configs'])

    every = sorted({h for hosts in GROUPS.values() for h in hosts})
    assert instances('node') == every
    assert instances('haproxy') == ['lb1', 'lb2']
    assert instances('nextcloud') == instances('pgbouncer') == ['web1', 'web2']
    assert instances('redis') == ['redis1', 'redis2']
    # Sentinels: both Redis hosts and the first load balancer (no redis_sentinel group).
    assert instances('sentinel') == ['lb1', 'redis1', 'redis2']
    assert instances('postgres') == instances('patroni') == ['db1', 'db2']
    assert instances('prometheus') == instances('alertmanager') == ['mon1']
    ports = {'node': 9100, 'haproxy': 8405, 'nextcloud': 9205, 'pgbouncer': 9127, 'redis': 9121, 'sentinel': 9355,
             'postgres': 9187, 'patroni': 8008, 'prometheus': 9090, 'alertmanager': 9093}
    for job, port in ports.items():
        for static in jobs[job]['static_configs']:
            host, target_port = static['targets'][0].rsplit(':', 1)
            assert host.startswith('10.0.0.') and int(target_port) == port, (job, static)
    # Only Prometheus and Alertmanager ask for the password (never written into the file itself).
    assert sorted(j for j in jobs if 'basic_auth' in jobs[j]) == ['alertmanager', 'prometheus']
    assert 'monitoring-secret-1' not in text
    assert jobs['blackbox']['static_configs'][0]['targets'] == ['https://cloud.example.org/status.php']
    mon1 = [c['targets'][0].rsplit(':', 1)[0] for c in jobs['node']['static_configs']
            if c['labels']['instance'] == 'mon1'][0]
    assert config['alerting']['alertmanagers'][0]['static_configs'][0]['targets'] == [mon1 + ':9093']
    res = subprocess.run([_promtool(), 'check', 'config', str(tmp_path / 'prometheus.yml')], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'SUCCESS' in res.stdout + res.stderr
    # Every rule file of the collection was found and checked with the configuration.
    assert 'rules' in res.stdout + res.stderr


def test_promtool_rejects_the_configuration_when_a_rule_file_is_broken(tmp_path):
    """The same check the role's validate runs: a broken expression fails it (the test can fail)."""
    _render(tmp_path)
    (tmp_path / 'rules' / 'broken.rules.yml').write_text(
        'groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: up ==\n')
    res = subprocess.run([_promtool(), 'check', 'config', str(tmp_path / 'prometheus.yml')], capture_output=True,
                         text=True, check=False)
    assert res.returncode != 0, res.stdout + res.stderr


def test_alertmanager_keeps_alerts_without_a_receiver_and_posts_to_a_webhook_when_given(tmp_path):
    quiet = yaml.safe_load(_render(tmp_path)['alertmanager.yml'])
    assert quiet['route']['receiver'] == 'default'
    assert quiet['receivers'] == [{'name': 'default'}]


def test_alertmanager_webhook(tmp_path):
    url = 'https://chat.example.org/hooks/secret-token'
    config = yaml.safe_load(_render(tmp_path, monitoring_alertmanager_webhook_url=url)['alertmanager.yml'])
    assert config['receivers'][0]['webhook_configs'] == [{'url': url, 'send_resolved': True}]


def test_command_lines(tmp_path):
    files = _render(tmp_path, monitoring_retention_time='45d', monitoring_retention_size='20GB')
    args = files['prometheus']
    assert '--storage.tsdb.retention.time=45d' in args and '--storage.tsdb.retention.size=20GB' in args
    assert '--web.config.file=/etc/prometheus/nextcloud-ha-web.yml' in args
    assert '--web.listen-address=10.0.0.' in args
    # One monitoring host: no Alertmanager cluster.
    assert files['prometheus-alertmanager'].rstrip().endswith('--cluster.listen-address="')
