# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The architecture holds (docs/architecture.md): each cluster fact is decided once, roles meet at declared seams.

These tests read the shipped code (roles, playbooks, plugins; not READMEs or argument specs, whose text only
describes) and fail when a cluster fact is worked out again outside ``roles/cluster_facts``, when a ``tasks_from``
names an undeclared entry point, when a role reads or sets another role's underscore variables, or when a piece
that exists once (the ``codebase_sync`` call, the secret-key classifier) appears twice.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FACTS_ROLE = os.path.join('roles', 'cluster_facts') + os.sep
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'roles', '*')) if os.path.isdir(p))


def _code_files(include_facts_role=False):
    """Shipped code: roles, playbooks and plugins, without Markdown and argument specs."""
    found = []
    for top in ('roles', 'playbooks', 'plugins'):
        for base, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                path = os.path.relpath(os.path.join(base, name), ROOT)
                if name.endswith('.md') or path.endswith(os.path.join('meta', 'argument_specs.yml')):
                    continue
                if '__pycache__' in path or (not include_facts_role and path.startswith(FACTS_ROLE)):
                    continue
                found.append(path)
    found.append('site.yml')
    return sorted(found)


def _hits(pattern, files=None):
    regex = re.compile(pattern)
    hits = []
    for path in files or _code_files():
        with open(os.path.join(ROOT, path), errors='replace') as handle:
            for number, line in enumerate(handle, 1):
                if regex.search(line):
                    hits.append('%s:%d: %s' % (path, number, line.strip()))
    return hits


def test_the_codebase_master_is_decided_only_in_cluster_facts():
    """No role or playbook takes "the first web node" as the master (nextcloud_ha_master may name another)."""
    assert _hits(r"groups(\[['\"]webservers['\"]\]|\.webservers)(\s*\|\s*default\(\[\]\)\))?(\[0\]|\[:1\]|\[1:\]|\s*\|\s*first)"
                 r"|hosts:\s*webservers\[") == []


def test_a_hosts_address_is_decided_only_in_cluster_facts():
    """One rule for every host's address: no role reads nextcloud_ha_private_address, the default route's address
    or ansible_host for a cluster address (the firewall's own connection to the controller excepted)."""
    hits = _hits(r"\bnextcloud_ha_private_address\b\s*(\||\}|\]|')|default_ipv4'?\]?\[?'?address|\bansible_host\b")
    allowed = [
        # The rollback check reaches the host the way the controller does (its connection, not a cluster address).
        'roles/firewall/tasks/apply.yml',
        # A documentation example of the module.
        'plugins/modules/config_php.py',
    ]
    assert [h for h in hits if not h.startswith(tuple(allowed))] == []


def test_paths_and_endpoints_are_decided_only_in_cluster_facts():
    """The web root, the data directory and the cluster variables' defaults are literals of cluster_facts only."""
    literals = _hits(r"/var/www/nextcloud\b|/srv/nextcloud/data",
                     [p for p in _code_files() if p.endswith(('.yml', '.j2'))])
    defaults = _hits(r"nextcloud_ha_(db_name|db_user|db_port|pgbouncer_port|domain|redis_host|redis_port|redis_user|"
                     r"local_proxy_postgres_port|data_dir|nextcloud_dir|webroot|releases_dir|trusted_domains_extra|master)"
                     r"\s*\|\s*default\(")
    assert literals + defaults == []


def test_the_database_hosts_are_listed_only_in_cluster_facts():
    assert _hits(r"groups\[['\"]postgres['\"]\]") == []


def _entry_points(role):
    path = os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')
    with open(path) as handle:
        return set((yaml.safe_load(handle).get('argument_specs') or {}).keys())


def _tasks_from_uses():
    """(file, role, entry point) of every include_role/import_role with tasks_from in roles and playbooks."""
    uses = []
    for path in _code_files(include_facts_role=True):
        if not path.endswith('.yml'):
            continue
        with open(os.path.join(ROOT, path)) as handle:
            text = handle.read()
        for block in re.split(r'\n\s*- name:', text):
            role = re.search(r'(?:include_role|import_role):\s*\n\s+name:\s*nextcloud_ha\.cluster\.([a-z_]+)', block)
            target = re.search(r'\n\s+tasks_from:\s*["\']?([^"\'\n]+)', block)
            if role and target:
                for name in re.findall(r'[a-z_]+', target.group(1)) if '{{' in target.group(1) else [target.group(1)]:
                    uses.append((path, role.group(1), re.sub(r'\.ya?ml$', '', name)))
    return uses


def test_every_tasks_from_is_a_declared_entry_point():
    uses = _tasks_from_uses()
    assert len(uses) >= 10, uses  # the parser still finds them
    undeclared = ['%s: %s.%s' % use for use in uses
                  if use[2] not in _entry_points(use[1]) and use[2] not in ('item',)]
    assert undeclared == []


def test_every_tasks_from_names_the_entry_point_not_the_file():
    """Ansible validates an entry point's argument spec only when tasks_from names it (tasks_from: sync), not its
    file (tasks_from: sync.yml), which skips the validation silently."""
    assert _hits(r"tasks_from:\s*[\"']?[a-z_]+\.ya?ml|loop:\s*\[[a-z_]+\.ya?ml") == []


def test_no_role_reads_or_sets_another_roles_underscore_variables():
    """Roles meet at their options and entry points, never at each other's _<role>_ or __<role>_ variables."""
    crossings = []
    for role in ROLES:
        longer = [other for other in ROLES if other != role and other.startswith(role + '_')]
        pattern = re.compile(r'(?<![A-Za-z0-9_])_{1,2}%s_[a-z0-9_]+' % role)
        for path in _code_files(include_facts_role=True):
            if path.startswith(os.path.join('roles', role) + os.sep) or path.startswith('plugins'):
                continue
            with open(os.path.join(ROOT, path), errors='replace') as handle:
                for number, line in enumerate(handle, 1):
                    for match in pattern.finditer(line):
                        name = match.group(0).lstrip('_')
                        if any(name.startswith(other + '_') for other in longer):
                            continue
                        crossings.append('%s:%d: %s' % (path, number, match.group(0)))
    assert crossings == []


# Reads of another role's variable with a | default(...) copy of its default, as they stand now (issue #23): the
# operational playbooks (thin playbooks, the next step) and a few shared settings that are not cluster facts yet
# (haproxy_vip, nextcloud_storage_backend, nextcloud_php_binary, etcd_tls, ...). The count per file may only fall.
REPEATS_LEFT = {
    'playbooks/failover.yml': 3, 'playbooks/haproxy.yml': 1, 'playbooks/preflight.yml': 1, 'playbooks/reinit.yml': 2,
    'playbooks/scale.yml': 2, 'playbooks/security_check.yml': 3, 'playbooks/storage.yml': 3,
    'playbooks/summary.yml': 11, 'playbooks/switchover.yml': 3,
    'roles/backup/tasks/leader.yml': 1, 'roles/backup/vars/main.yml': 1,
    'roles/firewall/defaults/main.yml': 1, 'roles/firewall/vars/main.yml': 2, 'roles/keepalived/defaults/main.yml': 2,
    'roles/local_proxy/defaults/main.yml': 1, 'roles/nextcloud_upgrade/defaults/main.yml': 2,
    'roles/patroni/defaults/main.yml': 2,
    'roles/patroni/tasks/checks.yml': 1, 'roles/pgbouncer/defaults/main.yml': 1,
    'roles/postgres_primary/defaults/main.yml': 2,
}


def test_no_role_repeats_more_of_another_roles_defaults():
    """A role or playbook reads another role's variable with a | default(...) copy of its default no more often
    than REPEATS_LEFT allows (nowhere else at all)."""
    found = {}
    for role in ROLES:
        # nextcloud_upgrade_* variables are not the nextcloud role's.
        # Nor are the cluster variables nextcloud_ha_* (the inventory's input, docs/architecture.md).
        longer = '|'.join([o[len(role) + 1:] for o in ROLES if o != role and o.startswith(role + '_')]
                          + (['ha'] if role == 'nextcloud' else []))
        pattern = r'\b%s_%s[a-z0-9_]+\s*\|\s*default\(' % (role, '(?!(%s)_)' % longer if longer else '')
        files = [p for p in _code_files() if not p.startswith(os.path.join('roles', role) + os.sep)]
        for hit in _hits(pattern, files):
            path = hit.split(':')[0]
            found[path] = found.get(path, 0) + 1
    assert [(path, count) for path, count in sorted(found.items()) if count > REPEATS_LEFT.get(path, 0)] == []


def test_the_codebase_sync_module_is_called_in_one_place():
    calls = _hits(r"nextcloud_ha\.cluster\.codebase_sync:", [p for p in _code_files() if not p.startswith('plugins')])
    assert len(set(h.split(':')[0] for h in calls)) == 1, calls


def test_one_secret_key_classifier():
    assert len(_hits(r"^SECRET_(KEYS|NAME)\b")) == 1


def test_no_role_reaches_into_the_collection_by_a_relative_path():
    assert _hits(r"role_path\s*\}\}/\.\./") == []


def test_every_play_that_reads_the_facts_decides_them_first():
    """A play whose roles or tasks read a cluster fact lists nextcloud_ha.cluster.cluster_facts first (its facts
    reach only the hosts of the play that decided them), or, on the controller, uses the entry point inventory."""
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, 'playbooks', '*.yml'))):
        with open(path) as handle:
            plays = yaml.safe_load(handle) or []
        for play in plays:
            if 'hosts' not in play:
                continue
            text = yaml.safe_dump(play)
            roles = [r.get('role', r.get('name')) if isinstance(r, dict) else r for r in play.get('roles') or []]
            others = re.findall(r'nextcloud_ha\.cluster\.([a-z_]+)', text)
            needs = 'cluster_facts_' in text or [r for r in others if r not in ('cluster_facts', 'package_index')]
            first = roles[:1] == ['nextcloud_ha.cluster.cluster_facts']
            controller = 'tasks_from: inventory' in text
            if needs and not (first or controller):
                missing.append('%s: %s' % (os.path.relpath(path, ROOT), play.get('name')))
    assert missing == []
