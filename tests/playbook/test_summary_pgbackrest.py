# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The summary's backup line (issue #25): role exporters' entry point pgbackrest_status runs the real task against a
stand-in `pgbackrest` that prints pgBackRest 2.45's `info --output=json` answers (tests/unit/fixtures/pgbackrest),
and the line of playbooks/summary.yml is rendered from the fact it publishes, as the summary's last play does."""

import os
import stat

import pytest
import yaml

from ansible_runner import ROOT, run_tasks

FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'pgbackrest')


def _summary_line():
    """The Backups line of the summary's last play and the variable it reads, as written in summary.yml."""
    with open(os.path.join(ROOT, 'playbooks', 'summary.yml')) as handle:
        play = [p for p in yaml.safe_load(handle) if p['hosts'] == 'localhost'][0]
    lines = [line for line in play['tasks'][0]['ansible.builtin.debug']['msg'] if line.startswith('Backups:')]
    assert len(lines) == 1, lines
    return lines[0], play['vars']['_summary_pgbackrest']


def _stand_in(tmp_path, answer, code=0):
    """A pgbackrest on PATH that prints ``answer`` (a fixture's name, or a text on stderr with ``code``)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    program = bin_dir / 'pgbackrest'
    if code == 0:
        body = 'cat %s\n' % os.path.join(FIXTURES, answer)
    else:
        body = 'echo "%s" >&2\nexit %d\n' % (answer, code)
    program.write_text('#!/bin/sh\ntest "$1" = --stanza=nextcloud-ha && test "$2 $3" = "info --output=json" '
                       '|| exit 99\n' + body)
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(bin_dir)


def _summary(tmp_path, monkeypatch, answer=None, code=0, host='localhost'):
    if answer is not None:
        monkeypatch.setenv('PATH', _stand_in(tmp_path, answer, code) + os.pathsep + os.environ['PATH'])
    line, variable = _summary_line()
    tasks = [
        {'ansible.builtin.set_fact': {'cluster_facts_pgbackrest_host': host,
                                      'cluster_facts_pgbackrest_stanza': 'nextcloud-ha',
                                      'cluster_facts_pgbackrest_user': 'postgres'}},
        # (The test runs as the user it is; on a host the task becomes postgres.)
        {'ansible.builtin.include_role': {'name': 'nextcloud_ha.cluster.exporters', 'tasks_from': 'pgbackrest_status'},
         'vars': {'ansible_become': False}, 'when': host == 'localhost'},
        {'ansible.builtin.debug': {'msg': line}, 'vars': {'_summary_pgbackrest': variable}},
    ]
    results = run_tasks(tmp_path, tasks, check=True, includes=True)
    assert not any(r.get('failed') for r in results), results
    return ' '.join(results[-1]['msg'].split())


def test_a_week_of_backups(tmp_path, monkeypatch):
    line = _summary(tmp_path, monkeypatch, 'info_ok.json')
    assert line.startswith('Backups: pgBackRest on localhost, stanza nextcloud-ha ok; newest backup '
                           '20261207-020001F_20261207-140002I (incr) completed 2026-12-07 14:00:16 UTC, '), line
    assert ' h ago, 60.12 MB (8.02 MB in the repository); 5 backups; WAL archive 000000010000000000000004 to ' \
           '00000001000000000000001C' in line, line


def test_a_stanza_without_a_backup_while_the_first_runs(tmp_path, monkeypatch):
    line = _summary(tmp_path, monkeypatch, 'info_no_backup.json')
    assert line == ('Backups: pgBackRest on localhost, stanza nextcloud-ha ERROR 2 (no valid backups), a backup is '
                    'running; no backup yet; WAL archive 000000010000000000000001 to 000000010000000000000003')


def test_pgbackrest_failing(tmp_path, monkeypatch):
    line = _summary(tmp_path, monkeypatch, 'ERROR: [055]: unable to load info file', code=55)
    assert line == ('Backups: unknown (pgbackrest info on localhost did not answer: ERROR: [055]: unable to load '
                    'info file)')


@pytest.mark.parametrize('host,expected', [('', 'Backups: none (no backup group)'),
                                           ('backup1', 'Backups: unknown (pgbackrest info on backup1 did not answer)')])
def test_no_backup_host_or_no_answer_from_it(tmp_path, monkeypatch, host, expected):
    assert _summary(tmp_path, monkeypatch, host=host) == expected
