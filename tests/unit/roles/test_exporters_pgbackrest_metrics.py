# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pgBackRest metrics script of role exporters (roles/exporters/files/nextcloud-ha-pgbackrest-metrics).

The fixtures in tests/unit/fixtures/pgbackrest are `pgbackrest --stanza=nextcloud-ha info --output=json` answers in
pgBackRest 2.45's format (Debian 12's package): its keys, nesting and status codes as src/command/info/info.c of
release 2.45 writes them and test/src/module/command/infoTest.c expects them (one line, keys sorted; per backup
archive, backrest, database, error, info with repository, label, lsn, prior, reference, timestamp, type; the stanza's
status with code, lock and message). Values are of the lab's shape: stanza nextcloud-ha, one encrypted repository,
PostgreSQL 15; a week of backups (full, incr, diff, full, incr); a stanza just created (no valid backup, a backup
running); a missing stanza; a repository that cannot be read (status 99, other).
"""

from __future__ import absolute_import, division, print_function

import json
import os
import subprocess

import pytest

from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'roles', 'exporters', 'files', 'nextcloud-ha-pgbackrest-metrics')
FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'pgbackrest')
STANZA = 'nextcloud-ha'


def _load():
    return load_script(SCRIPT, 'nextcloud_ha_pgbackrest_metrics')


metrics = _load()


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_a_week_of_backups():
    info = metrics.parse_info(fixture('info_ok.json'), STANZA)
    assert (info['status'], info['message'], info['lock_held']) == (0, 'ok', False)
    assert info['backups'] == {'full': 2, 'diff': 1, 'incr': 2}
    assert info['last']['full'] == {'label': '20261207-020001F', 'start': 1796608801, 'stop': 1796608940,
                                    'size': 63001021, 'delta': 63001021, 'repo_size': 8390012,
                                    'repo_delta': 8390012}
    assert info['last']['incr']['label'] == '20261207-020001F_20261207-140002I'
    assert info['last']['diff']['label'] == '20261130-020002F_20261203-020003D'
    assert (info['archive_min_wal'], info['archive_max_wal']) == ('000000010000000000000004',
                                                                  '00000001000000000000001C')


def test_a_stanza_without_a_backup_yet():
    info = metrics.parse_info(fixture('info_no_backup.json'), STANZA)
    assert (info['status'], info['message'], info['lock_held']) == (2, 'no valid backups', True)
    assert info['backups'] == {'full': 0, 'diff': 0, 'incr': 0}
    assert info['last'] == {}
    assert info['archive_max_wal'] == '000000010000000000000003'


@pytest.mark.parametrize('name,code', [('info_missing_stanza.json', 1), ('info_other_error.json', 99)])
def test_an_error_status(name, code):
    info = metrics.parse_info(fixture(name), STANZA)
    assert info['status'] == code
    assert info['last'] == {} and info['archive_max_wal'] is None


@pytest.mark.parametrize('text', ['', 'ERROR: [055]: unable to load info file', '{}', '[]', '[{"name": "x"}]',
                                  '[{"name": "nextcloud-ha", "status": {"message": "ok"}}]'])
def test_an_answer_that_is_not_the_stanzas_json_is_refused(text):
    with pytest.raises(metrics.InfoError):
        metrics.parse_info(text, STANZA)


def test_only_the_current_databases_archive_counts():
    """After a stanza-upgrade (a new PostgreSQL major) the old database's archive is not where WAL goes now."""
    data = json.loads(fixture('info_no_backup.json'))
    data[0]['db'].append({'id': 2, 'repo-key': 1, 'system-id': 7447038402546958127, 'version': '16'})
    data[0]['archive'].append({'database': {'id': 2, 'repo-key': 1}, 'id': '16-2', 'max': None, 'min': None})
    assert metrics.parse_info(json.dumps(data), STANZA)['archive_max_wal'] is None


def test_odd_values_are_left_out():
    data = json.loads(fixture('info_ok.json'))
    for backup in data[0]['backup']:
        del backup['info']['repository']['size']  # block incremental: size-map instead
        backup['info']['size'] = None
    data[0]['backup'].append({'type': 'full', 'label': 'broken', 'timestamp': {'start': 1, 'stop': 'x'}})
    data[0]['backup'].append('not a backup')
    samples = _samples(metrics.render(metrics.parse_info(json.dumps(data), STANZA), 1796659200.0))
    assert samples['pgbackrest_backups{type="full"}'] == 2
    assert not [name for name in samples if name.startswith(('pgbackrest_backup_last_repo_size_bytes',
                                                             'pgbackrest_backup_last_size_bytes'))]
    assert samples['pgbackrest_backup_last_repo_delta_bytes{type="full"}'] == 8390012


def _samples(text):
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            assert name not in samples, name
            samples[name] = float(value)
    return samples


def _run(monkeypatch, tmp_path, answer):
    def info(stanza, user, timeout=metrics.TIMEOUT):
        assert (stanza, user, timeout) == (STANZA, 'postgres', 60)
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(metrics, 'pgbackrest_info', info)
    output = tmp_path / 'nextcloud_ha_pgbackrest.prom'
    assert metrics.main(['--output', str(output), '--stanza', STANZA, '--timeout', '60']) == 0
    assert sorted(os.listdir(str(tmp_path))) == ['nextcloud_ha_pgbackrest.prom']  # no temporary file left
    return _samples(output.read_text())


def test_the_metrics_of_a_week_of_backups(monkeypatch, tmp_path):
    samples = _run(monkeypatch, tmp_path, fixture('info_ok.json'))
    assert samples.pop('pgbackrest_collector_last_run_timestamp_seconds') > 1.7e9
    assert samples == {
        'pgbackrest_info_success': 1,
        'pgbackrest_stanza_status': 0,
        'pgbackrest_stanza_backup_lock_held': 0,
        'pgbackrest_backups{type="full"}': 2,
        'pgbackrest_backups{type="diff"}': 1,
        'pgbackrest_backups{type="incr"}': 2,
        'pgbackrest_backup_last_completion_timestamp_seconds{type="full"}': 1796608940,
        'pgbackrest_backup_last_completion_timestamp_seconds{type="diff"}': 1796263221,
        'pgbackrest_backup_last_completion_timestamp_seconds{type="incr"}': 1796652016,
        'pgbackrest_backup_last_start_timestamp_seconds{type="full"}': 1796608801,
        'pgbackrest_backup_last_start_timestamp_seconds{type="diff"}': 1796263203,
        'pgbackrest_backup_last_start_timestamp_seconds{type="incr"}': 1796652002,
        'pgbackrest_backup_last_duration_seconds{type="full"}': 139,
        'pgbackrest_backup_last_duration_seconds{type="diff"}': 18,
        'pgbackrest_backup_last_duration_seconds{type="incr"}': 14,
        'pgbackrest_backup_last_size_bytes{type="full"}': 63001021,
        'pgbackrest_backup_last_size_bytes{type="diff"}': 62500713,
        'pgbackrest_backup_last_size_bytes{type="incr"}': 63044110,
        'pgbackrest_backup_last_delta_bytes{type="full"}': 63001021,
        'pgbackrest_backup_last_delta_bytes{type="diff"}': 2811050,
        'pgbackrest_backup_last_delta_bytes{type="incr"}': 1522040,
        'pgbackrest_backup_last_repo_size_bytes{type="full"}': 8390012,
        'pgbackrest_backup_last_repo_size_bytes{type="diff"}': 8297110,
        'pgbackrest_backup_last_repo_size_bytes{type="incr"}': 8412310,
        'pgbackrest_backup_last_repo_delta_bytes{type="full"}': 8390012,
        'pgbackrest_backup_last_repo_delta_bytes{type="diff"}': 390112,
        'pgbackrest_backup_last_repo_delta_bytes{type="incr"}': 211020,
        'pgbackrest_archive_max_wal_present': 1,
    }


def test_the_metrics_of_a_stanza_without_a_backup(monkeypatch, tmp_path):
    samples = _run(monkeypatch, tmp_path, fixture('info_no_backup.json'))
    assert samples.pop('pgbackrest_collector_last_run_timestamp_seconds') > 1.7e9
    assert samples == {
        'pgbackrest_info_success': 1,
        'pgbackrest_stanza_status': 2,
        'pgbackrest_stanza_backup_lock_held': 1,
        'pgbackrest_backups{type="full"}': 0,
        'pgbackrest_backups{type="diff"}': 0,
        'pgbackrest_backups{type="incr"}': 0,
        'pgbackrest_archive_max_wal_present': 1,
    }


@pytest.mark.parametrize('answer', [metrics.InfoError('timed out'), 'ERROR: [041]: unable to open file', '[]'])
def test_no_answer_is_info_failing(monkeypatch, tmp_path, answer):
    samples = _run(monkeypatch, tmp_path, answer)
    assert samples.pop('pgbackrest_collector_last_run_timestamp_seconds') > 1.7e9
    assert samples == {'pgbackrest_info_success': 0}


def test_an_old_file_is_replaced_whole(monkeypatch, tmp_path):
    (tmp_path / 'nextcloud_ha_pgbackrest.prom').write_text('pgbackrest_stanza_status 0\n')
    samples = _run(monkeypatch, tmp_path, metrics.InfoError('pgbackrest: not found'))
    assert 'pgbackrest_stanza_status' not in samples


class _Completed(object):
    def __init__(self, returncode, stdout='', stderr=''):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def test_info_runs_as_the_user_with_an_argv_and_a_timeout(monkeypatch):
    calls = []

    def run(argv, **kwargs):
        calls.append((argv, kwargs['timeout']))
        return _Completed(0, '[]')
    monkeypatch.setattr(subprocess, 'run', run)
    assert metrics.pgbackrest_info(STANZA, 'postgres', timeout=30) == '[]'
    assert calls == [(['runuser', '-u', 'postgres', '--', 'pgbackrest', '--stanza=nextcloud-ha', 'info',
                       '--output=json'], 30)]


def test_info_is_tried_again_then_refused(monkeypatch):
    answers = [_Completed(1, stderr='ERROR: [082]: lock'), _Completed(0, '[]')]
    monkeypatch.setattr(subprocess, 'run', lambda argv, **kwargs: answers.pop(0))
    monkeypatch.setattr(metrics.time, 'sleep', lambda seconds: None)
    assert metrics.pgbackrest_info(STANZA, 'postgres') == '[]'
    monkeypatch.setattr(subprocess, 'run', lambda argv, **kwargs: _Completed(56, stderr='ERROR: [056]: no config'))
    with pytest.raises(metrics.InfoError, match='no config'):
        metrics.pgbackrest_info(STANZA, 'postgres')


@pytest.mark.parametrize('error', [OSError(2, 'No such file or directory: runuser'),
                                   subprocess.TimeoutExpired(['pgbackrest'], 120)])
def test_a_missing_program_or_a_timeout_is_an_info_error(monkeypatch, error):
    def run(argv, **kwargs):
        raise error
    monkeypatch.setattr(subprocess, 'run', run)
    with pytest.raises(metrics.InfoError):
        metrics.pgbackrest_info(STANZA, 'postgres')
