# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nextcloud_ha.cluster.changes`` callback, through the real ansible-playbook of this venv."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
SECRET = 'not-for-the-log-7f3a'

PLAYBOOK = """
- name: Callback test
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the first file
      ansible.builtin.copy:
        content: one
        dest: "{{ workdir }}/one"
        mode: "0600"
    - name: Write the loop's files
      ansible.builtin.copy:
        content: "{{ item }}"
        dest: "{{ workdir }}/{{ item }}"
        mode: "0600"
      loop: [a, b, c]
    - name: Write the secret
      ansible.builtin.copy:
        content: "%s"
        dest: "{{ workdir }}/secret"
        mode: "0600"
      no_log: true
    - name: Say hello
      ansible.builtin.debug:
        msg: hello
""" % SECRET


def run(tmp_path, *args):
    (tmp_path / 'site.yml').write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'node1,node2,', '-c', 'local', '-e',
                           'ansible_python_interpreter=%s workdir=%s' % (sys.executable, tmp_path / '{{ inventory_hostname }}'),
                           str(tmp_path / 'site.yml')] + list(args),
                          cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'WHAT CHANGED' in proc.stdout, 'the callback is not enabled by ansible.cfg:\n' + proc.stdout
    section = proc.stdout.split('WHAT CHANGED', 1)[1]
    return [line for line in section.splitlines()[1:] if line.strip()]


def test_first_run_lists_each_hosts_changed_tasks_in_order(tmp_path):
    (tmp_path / 'node1').mkdir()
    (tmp_path / 'node2').mkdir()
    (tmp_path / 'node2' / 'one').write_text('one')  # node2 has its first file already
    (tmp_path / 'node2' / 'one').chmod(0o600)
    lines = run(tmp_path)
    assert lines == [
        'node1, tasks that changed something:',
        "  - Write the first file",
        "  - Write the loop's files (3 items)",
        '  - Write the secret',
        'node2, tasks that changed something:',
        "  - Write the loop's files (3 items)",
        '  - Write the secret',
    ]


def test_second_run_says_nothing_changed(tmp_path):
    (tmp_path / 'node1').mkdir()
    (tmp_path / 'node2').mkdir()
    run(tmp_path)
    assert run(tmp_path) == ['nothing changed on: node1, node2']


def test_check_mode_says_would_change_and_changes_nothing(tmp_path):
    (tmp_path / 'node1').mkdir()
    (tmp_path / 'node2').mkdir()
    run(tmp_path)
    (tmp_path / 'node2' / 'b').unlink()
    lines = run(tmp_path, '--check')
    assert lines == ['node2, tasks that would change something:', "  - Write the loop's files",
                     'nothing would change on: node1']
    assert not (tmp_path / 'node2' / 'b').exists()


def test_never_prints_a_result(tmp_path):
    (tmp_path / 'node1').mkdir()
    (tmp_path / 'node2').mkdir()
    lines = run(tmp_path, '-vvv', '--diff')
    assert lines and not any(SECRET in line or 'hello' in line for line in lines)
