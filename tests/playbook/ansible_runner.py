# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run tasks through the real ansible-playbook of this venv and return each task's result."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')


def run_tasks(workdir, tasks, check=False, diff=False, includes=False):
    """Run ``tasks`` against the implicit localhost; returns one result dict per task (with ``includes``, per task
    run: an include_role's tasks follow its own result).

    Uses the repository's ansible.cfg (so ``nextcloud_ha.cluster`` resolves
    from this checkout) and the JSON callback to read the results.
    """
    playbook = os.path.join(str(workdir), 'playbook.yml')
    with open(playbook, 'w') as handle:
        # JSON is YAML.
        json.dump([{'name': 'config_php test', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], handle, indent=1)
    env = dict(os.environ)
    env.update({
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        # Only the JSON on stdout: not the aggregate callbacks ansible.cfg enables (they print too).
        'ANSIBLE_CALLBACKS_ENABLED': 'ansible.posix.json',
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
    })
    command = [ANSIBLE_PLAYBOOK, playbook]
    if check:
        command.append('--check')
    if diff:
        command.append('--diff')
    proc = subprocess.run(command, cwd=str(workdir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('ansible-playbook did not print JSON (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr))
    results = [task['hosts']['localhost'] for task in output['plays'][0]['tasks']]
    assert includes or len(results) == len(tasks), (proc.stdout, proc.stderr)
    return results


def run_play(workdir, inventory, tasks, hosts='localhost', name='unit test'):
    """Runs ``tasks`` on ``hosts`` of ``inventory`` (a dict, e.g. local hosts with ansible_connection local) with the
    repository's ansible.cfg; returns the CompletedProcess (output as text)."""
    with open(os.path.join(str(workdir), 'hosts.json'), 'w') as handle:
        json.dump(inventory, handle)
    with open(os.path.join(str(workdir), 'play.yml'), 'w') as handle:
        json.dump([{'name': name, 'hosts': hosts, 'gather_facts': False, 'tasks': tasks}], handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_RETRY_FILES_ENABLED='0')
    return subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'hosts.json', 'play.yml'], cwd=str(workdir), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
