# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pieces that the lab cannot run (issue #8): the NFS mount unit (no NFS in this kernel), the config.php
keys of each backend and the S3 objectstore block, rendered by the real Ansible from the roles' own files."""

import json
import os
import subprocess

from ansible_runner import ANSIBLE_PLAYBOOK, ROOT, run_tasks

ROLES = os.path.join(ROOT, 'roles')


# The cluster facts the roles' defaults read, by the rules of roles/cluster_facts (no inventory here, so no addresses).
_FACTS = ['master', 'database_hosts', 'releases_dir', 'webroot', 'data_dir', 'domain', 'trusted_domains', 'db_name',
          'db_user', 'db_port', 'local_proxy_postgres_port', 'redis_port', 'redis_user']


def _load(role):
    return [{'ansible.builtin.include_vars': {'file': os.path.join(ROLES, 'cluster_facts', 'vars', 'main.yml')}},
            {'ansible.builtin.set_fact': dict(('cluster_facts_' + name, '{{ _cluster_facts_%s }}' % name)
                                              for name in _FACTS)},
            {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, role, 'defaults', 'main.yml')}},
            {'ansible.builtin.include_vars': {'file': os.path.join(ROLES, role, 'vars', 'main.yml')}}]


def _render_nfs(tmp_path, **overrides):
    dest = os.path.join(str(tmp_path), 'unit.mount')
    facts = {'nfs_client_server': 'nas.example.org', 'nfs_client_export': '/export/nextcloud'}
    facts.update(overrides)
    results = run_tasks(tmp_path, _load('nfs_client') + [
        {'ansible.builtin.set_fact': facts},
        {'ansible.builtin.template': {
            'src': os.path.join(ROLES, 'nfs_client', 'templates', 'etc', 'systemd', 'system', 'nfs.mount.j2'),
            'dest': dest, 'mode': '0644'}},
        {'ansible.builtin.template': {
            'src': os.path.join(ROLES, 'nfs_client', 'templates', 'etc', 'systemd', 'system', 'service.d',
                                'nextcloud-storage.conf.j2'),
            'dest': dest + '.dropin', 'mode': '0644'}},
        {'ansible.builtin.debug': {'var': 'nfs_client_dependent_services'}},
    ])
    assert not any(r.get('failed') for r in results), results
    with open(dest) as handle:
        unit = handle.read()
    with open(dest + '.dropin') as handle:
        dropin = handle.read()
    return unit, dropin, results[-1]['nfs_client_dependent_services']


def _unit_values(unit):
    return dict(line.split('=', 1) for line in unit.splitlines() if '=' in line and not line.startswith('#'))


def test_nfs_unit_has_hard_vers_4_2_noatime_by_default(tmp_path):
    unit, dropin, services = _render_nfs(tmp_path)
    values = _unit_values(unit)
    assert values['What'] == 'nas.example.org:/export/nextcloud'
    assert values['Where'] == '/srv/nextcloud/data'
    assert values['Type'] == 'nfs'
    options = values['Options'].split(',')
    assert options[:3] == ['vers=4.2', 'hard', 'noatime']
    assert '_netdev' in options and 'soft' not in options
    assert 'After' in values and 'network-online.target' in values['After']
    assert 'RequiresMountsFor=/srv/nextcloud/data' in dropin
    assert services == ['apache2.service', 'php8.2-fpm.service']
    assert unit.startswith('#')  # ansible_managed comment first


def test_nfs_options_follow_the_variables(tmp_path):
    unit = _render_nfs(tmp_path, nfs_client_version='4.1', nfs_client_hard=False, nfs_client_noatime=False,
                       nfs_client_extra_options=['_netdev'], nfs_client_mount_point='/data/nc')[0]
    values = _unit_values(unit)
    assert values['Options'] == 'vers=4.1,soft,_netdev'
    assert values['Where'] == '/data/nc'


def _nextcloud_vars(tmp_path, names, **facts):
    results = run_tasks(tmp_path, _load('nextcloud') + [
        {'ansible.builtin.set_fact': facts},
        {'ansible.builtin.debug': {'msg': '{{ {%s} | to_json }}' % ', '.join("'%s': %s" % (n, n) for n in names)}},
    ])
    assert not any(r.get('failed') for r in results), results
    return json.loads(results[-1]['msg'])


def test_nfs_backend_sets_filesystem_check_changes_and_updatedirectory(tmp_path):
    got = _nextcloud_vars(tmp_path, ['_nextcloud_config_storage'], nextcloud_storage_backend='nfs')
    assert got['_nextcloud_config_storage'] == {'filesystem_check_changes': 1,
                                                'updatedirectory': '/var/lib/nextcloud-updater'}


def test_other_backends_set_no_filesystem_keys(tmp_path):
    for backend in ('local', 'glusterfs', 's3'):
        got = _nextcloud_vars(tmp_path, ['_nextcloud_config_storage'], nextcloud_storage_backend=backend)
        assert got['_nextcloud_config_storage'] == {}, backend


def test_s3_objectstore_block(tmp_path):
    got = _nextcloud_vars(tmp_path, ['_nextcloud_s3_objectstore', '_nextcloud_s3_config_key'],
                          nextcloud_storage_backend='s3', nextcloud_s3_hostname='s3.example.org',
                          nextcloud_s3_key='AK', nextcloud_s3_secret='SK', nextcloud_s3_port='9000',
                          nextcloud_s3_use_ssl=False, nextcloud_s3_use_path_style=True)
    assert got['_nextcloud_s3_config_key'] == 'objectstore'
    assert got['_nextcloud_s3_objectstore'] == {
        'class': '\\OC\\Files\\ObjectStore\\S3',
        'arguments': {'bucket': 'nextcloud', 'hostname': 's3.example.org', 'port': 9000, 'use_ssl': False,
                      'region': 'us-east-1', 'use_path_style': True, 'key': 'AK', 'secret': 'SK',
                      'autocreate': False}}


def test_s3_multibucket_block(tmp_path):
    got = _nextcloud_vars(tmp_path, ['_nextcloud_s3_objectstore', '_nextcloud_s3_config_key'],
                          nextcloud_s3_hostname='s3.example.org', nextcloud_s3_key='AK', nextcloud_s3_secret='SK',
                          nextcloud_s3_multibucket=True, nextcloud_s3_num_buckets=16)
    assert got['_nextcloud_s3_config_key'] == 'objectstore_multibucket'
    args = got['_nextcloud_s3_objectstore']['arguments']
    assert args['num_buckets'] == 16 and args['autocreate'] is True and args['port'] == 443


def _storage_tasks(tmp_path, installed, config):
    """Runs the role's tasks/storage.yml (an include expands, so ansible_runner's one-result-per-task check does not
    apply: the JSON of the run is searched instead)."""
    task = {
        'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.nextcloud', 'tasks_from': 'storage.yml'},
        'vars': {'_nextcloud_config_file': config, '_nextcloud_cluster_installed': installed,
                 'nextcloud_storage_backend': 's3', 'nextcloud_s3_hostname': 's3.example.org',
                 'nextcloud_s3_key': 'AKEXAMPLE', 'nextcloud_s3_secret': 'SECRETEXAMPLE',
                 'nextcloud_web_user': 'root', 'nextcloud_web_group': 'root',
                 'nextcloud_ha_db_password': 'x', 'nextcloud_ha_admin_password': 'x',
                 'nextcloud_ha_redis_password': 'x'}}
    playbook = os.path.join(str(tmp_path), 'storage.yml')
    with open(playbook, 'w') as handle:
        json.dump([{'name': 'storage', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [task]}], handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, playbook], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SECRETEXAMPLE' not in proc.stdout + proc.stderr
    return proc.stdout


def test_objectstore_block_is_written_before_the_install_only(tmp_path):
    config = os.path.join(str(tmp_path), 'config.php')
    _storage_tasks(tmp_path, False, config)
    with open(config) as handle:
        text = handle.read()
    assert "'objectstore' => \n  array (\n    'class' => '\\\\OC\\\\Files\\\\ObjectStore\\\\S3'," in text, text
    assert "'bucket' => 'nextcloud'" in text and "'secret' => 'SECRETEXAMPLE'" in text
    # Installed: the block is never written again, whatever it holds now.
    with open(config, 'w') as handle:
        handle.write("<?php\n$CONFIG = array (\n  'installed' => true,\n);\n")
    _storage_tasks(tmp_path, True, config)
    with open(config) as handle:
        assert 'objectstore' not in handle.read()


def _firewall_glusterfs_ports(tmp_path, roles, **facts):
    tasks = []
    for role in roles:
        tasks.append({'ansible.builtin.include_vars': {'file': os.path.join(ROLES, role, 'defaults', 'main.yml')}})
    if facts:
        tasks.append({'ansible.builtin.set_fact': facts})
    tasks.append({'ansible.builtin.debug': {'var': 'firewall_glusterfs_ports'}})
    results = run_tasks(tmp_path, tasks)
    assert not any(r.get('failed') for r in results), results
    return results[-1]['firewall_glusterfs_ports']


def test_firewall_opens_the_glusterfs_brick_range(tmp_path):
    """The firewall's GlusterFS ports follow glusterfs_base_port/glusterfs_max_port (issue #8: a brick outside the
    opened range is unreachable once it restarts)."""
    import yaml
    with open(os.path.join(ROLES, 'glusterfs', 'defaults', 'main.yml')) as handle:
        gluster = yaml.safe_load(handle)
    brick_range = '%d-%d' % (gluster['glusterfs_base_port'], gluster['glusterfs_max_port'])
    # the firewall role alone (glusterfs variables not set for the host): the glusterfs role's default range
    assert _firewall_glusterfs_ports(tmp_path, ['firewall']) == ['24007-24008', brick_range]
    # both roles' defaults loaded, as in one play
    assert _firewall_glusterfs_ports(tmp_path, ['glusterfs', 'firewall']) == ['24007-24008', brick_range]
    # the inventory moves the brick range: the firewall follows
    assert _firewall_glusterfs_ports(tmp_path, ['firewall'], glusterfs_base_port=50000,
                                     glusterfs_max_port=50049) == ['24007-24008', '50000-50049']
