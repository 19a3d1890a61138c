# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup script of role pgbackrest (roles/pgbackrest/files/nextcloud-ha-pgbackrest-backup): from a standby
when pgBackRest finds one, from the primary when it ends with its error 56 (no standby), never twice otherwise."""

from __future__ import absolute_import, division, print_function

import os

import pytest

from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'roles', 'pgbackrest', 'files', 'nextcloud-ha-pgbackrest-backup')


def _load():
    return load_script(SCRIPT, 'nextcloud_ha_pgbackrest_backup')


backup_script = _load()


class Recorder:
    def __init__(self, *codes):
        self.codes = list(codes)
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.codes.pop(0)


def test_a_backup_from_the_standby_runs_once():
    run = Recorder(0)
    assert backup_script.backup('nextcloud-ha', 'incr', run=run) == 0
    assert run.calls == [['pgbackrest', '--stanza=nextcloud-ha', '--type=incr', '--backup-standby', 'backup']]


def test_without_a_standby_the_backup_is_taken_from_the_primary(capsys):
    run = Recorder(56, 0)
    assert backup_script.backup('nextcloud-ha', 'full', run=run) == 0
    assert run.calls[1] == ['pgbackrest', '--stanza=nextcloud-ha', '--type=full', '--no-backup-standby', 'backup']
    assert 'no standby runs' in capsys.readouterr().err


@pytest.mark.parametrize('code', [1, 25, 82])
def test_any_other_failure_is_reported_as_is_without_a_second_try(code):
    run = Recorder(code)
    assert backup_script.backup('nextcloud-ha', 'diff', run=run) == code
    assert len(run.calls) == 1


def test_the_second_try_reports_its_own_failure():
    run = Recorder(56, 82)
    assert backup_script.backup('s', 'incr', run=run) == 82


def test_an_unknown_type_is_refused():
    with pytest.raises(SystemExit):
        backup_script.main(['--stanza', 's', '--type', 'weekly'])
