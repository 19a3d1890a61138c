# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The haproxy role's metrics frontend (issue #24): haproxy.cfg as the real Ansible renders it from the role's own
files, with and without monitoring hosts, and the preflight's refusal of a metrics port taken by another frontend.
With a haproxy binary on the controller (HAPROXY=/path, or haproxy in PATH), the rendered file must pass `haproxy -c`.
"""

import json
import os
import re
import shutil
import subprocess
import sys


from ansible_runner import ANSIBLE_PLAYBOOK, ROOT

ROLE = os.path.join(ROOT, 'roles', 'haproxy')


def _play(tmp_path, monitoring, tasks, extra_vars=None):
    children = {'haproxy': {'hosts': {'lb1': {'nextcloud_ha_private_address': '10.0.0.10'}}},
                'webservers': {'hosts': {'web1': {'nextcloud_ha_private_address': '10.0.0.11'},
                                         'web2': {'nextcloud_ha_private_address': '10.0.0.12'}}}}
    if monitoring:
        children['monitoring'] = {'hosts': {'mon1': {'nextcloud_ha_private_address': '10.0.0.19'}}}
    inventory = {'all': {
        'vars': dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                      'nextcloud_ha_haproxy_stats_password': 'stats-password-123'}, **(extra_vars or {})),
        'children': children,
    }}
    with open(os.path.join(str(tmp_path), 'hosts.json'), 'w') as handle:
        json.dump(inventory, handle)
    with open(os.path.join(str(tmp_path), 'play.yml'), 'w') as handle:
        json.dump([{'name': 'haproxy rendering test', 'hosts': 'lb1', 'gather_facts': False, 'tasks': tasks}], handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_RETRY_FILES_ENABLED='0')
    return subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'hosts.json', 'play.yml'], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _render(tmp_path, monitoring, extra_vars=None):
    dest = os.path.join(str(tmp_path), 'haproxy.cfg')
    res = _play(tmp_path, monitoring, [
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.cluster_facts'}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'defaults', 'main.yml')}},
        {'ansible.builtin.include_vars': {'file': os.path.join(ROLE, 'vars', 'main.yml')}},
        {'ansible.builtin.template': {'src': os.path.join(ROLE, 'templates', 'etc', 'haproxy', 'haproxy.cfg.j2'),
                                      'dest': dest, 'mode': '0600'}},
    ], extra_vars)
    assert res.returncode == 0, res.stdout + res.stderr
    with open(dest) as handle:
        return handle.read()


def _section(text, name):
    match = re.search(r'^frontend %s\n((?:    .*\n)+)' % re.escape(name), text, re.M)
    return match.group(1) if match else None


def test_metrics_frontend_with_monitoring_hosts(tmp_path):
    text = _render(tmp_path, monitoring=True)
    section = _section(text, 'prometheus')
    assert section is not None, text
    lines = [line.strip() for line in section.splitlines()]
    assert 'bind 10.0.0.10:8405' in lines
    assert 'http-request use-service prometheus-exporter if { path /metrics }' in lines
    assert lines[-1] == 'http-request deny'
    # keepalived's loopback health answer keeps its own frontend
    assert 'bind 127.0.0.1:8405' in _section(text, 'monitor')
    _check(tmp_path, text)


def test_no_metrics_frontend_without_monitoring_hosts(tmp_path):
    text = _render(tmp_path, monitoring=False)
    assert _section(text, 'prometheus') is None
    assert 'prometheus-exporter' not in text


def test_metrics_port_follows_nextcloud_ha_metrics_ports(tmp_path):
    text = _render(tmp_path, monitoring=True, extra_vars={'nextcloud_ha_metrics_ports': {'haproxy': 9101}})
    assert 'bind 10.0.0.10:9101' in _section(text, 'prometheus')


def test_a_metrics_port_taken_by_the_stats_page_is_refused(tmp_path):
    res = _play(tmp_path, True, [
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.cluster_facts'}},
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.haproxy', 'tasks_from': 'preflight'}},
    ], {'nextcloud_ha_metrics_ports': {'haproxy': 8404}})
    out = ' '.join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    assert 'a port of its own as haproxy_metrics_port (got 8404)' in out


def _check(tmp_path, text):
    haproxy = os.environ.get('HAPROXY') or shutil.which('haproxy')
    if not haproxy:
        return
    # the certificate and paths of the lab do not exist here: check the metrics frontend alone
    cfg = os.path.join(str(tmp_path), 'metrics-only.cfg')
    with open(cfg, 'w') as handle:
        handle.write('defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\n'
                     'frontend prometheus\n' + _section(text, 'prometheus').replace('10.0.0.10', '127.0.0.1'))
    res = subprocess.run([haproxy, '-c', '-f', cfg], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
