# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role backup, entry point restore (issue #25): the target time of a point-in-time restore, read by the role's own
tasks (tasks/restore_preflight.yml) through the real Ansible: PostgreSQL's way of writing a time with its UTC offset
becomes the epoch and the text pgBackRest is given; anything else is refused with a message, never a template error."""

import calendar
import datetime
import os

import pytest
import yaml

from ansible_runner import ROOT, run_tasks

NAMES = ('Read the target time', 'Check the target time is a time')


def _tasks(value):
    with open(os.path.join(ROOT, 'roles', 'backup', 'tasks', 'restore_preflight.yml')) as handle:
        tasks = [t for t in yaml.safe_load(handle) if t['name'] in NAMES]
    assert [t['name'] for t in tasks] == list(NAMES)
    return [{'ansible.builtin.set_fact': {'backup_restore_target_time': value}}] + tasks + [
        {'ansible.builtin.debug': {'var': '_backup_restore_target'}}]


def _epoch(*parts):
    return calendar.timegm(datetime.datetime(*parts).timetuple())


@pytest.mark.parametrize('value, epoch, text', [
    ('2026-12-07 22:30:00+00', _epoch(2026, 12, 7, 22, 30), '2026-12-07 22:30:00+00:00'),
    ('2026-12-07 23:30:00+01:00', _epoch(2026, 12, 7, 22, 30), '2026-12-07 23:30:00+01:00'),
    ('2026-12-07T22:30:00.123456Z', _epoch(2026, 12, 7, 22, 30) + 0.123456, '2026-12-07 22:30:00.123456+00:00'),
    ('2024-02-29 00:00:00-0530', _epoch(2024, 2, 29, 5, 30), '2024-02-29 00:00:00-05:30'),
    ('1999-12-31 23:59:59 UTC', _epoch(1999, 12, 31, 23, 59, 59), '1999-12-31 23:59:59+00:00'),
])
def test_a_time_with_its_offset_is_read(tmp_path, value, epoch, text):
    results = run_tasks(tmp_path, _tasks(value))
    assert not any(r.get('failed') for r in results), results
    target = results[-1]['_backup_restore_target']
    assert target['given'] is True and target['valid'] is True
    assert abs(target['epoch'] - epoch) < 1e-6 and target['text'] == text


def test_no_time_is_the_latest_state(tmp_path):
    results = run_tasks(tmp_path, _tasks(''))
    assert results[-1]['_backup_restore_target'] == {'given': False, 'valid': True, 'raw': ''}


@pytest.mark.parametrize('value', ['yesterday', '2026-12-07 22:30:00', '2026-02-30 10:00:00+00', '2026-13-01 10:00:00+00',
                                   '2026-12-07 24:00:00+00', '2026-12-07 22:30+00', '2026-12-07 22:30:00+25:00'])
def test_anything_else_is_refused_with_a_message(tmp_path, value):
    results = run_tasks(tmp_path, _tasks(value)[:3])
    assert results[1].get('failed') is not True, results[1]  # read without a template error
    refusal = results[2]
    assert refusal.get('failed') is True
    msg = ' '.join(refusal['msg'].split())
    assert msg.startswith("REFUSED: restore_target_time '%s' is not a time." % value) and 'Nothing was changed.' in msg
