# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The alert rules of the monitoring role pass promtool, and every alert fires when it should and only then.

``roles/monitoring/files/rules/*.rules.yml`` are checked with ``promtool check rules`` (syntax, PromQL, annotation
templates). The fixtures ``tests/unit/fixtures/alert_rules/*.test.yml`` are ``promtool test rules`` files: input series
as the exporters write them (docs/monitoring.md, "Alert rules") and, per alert, evaluation times at which it must fire
(with its labels) or must not. Every alert of every rule file needs at least one case of each kind; this module
reads the rule files and the fixtures and fails when one is missing.

promtool compares annotations too, so the expression fixtures run against copies of the rule files without
annotations (same expressions, ``for`` and labels); ``annotations.test.yml`` runs against the shipped files and
holds the rendered summary and description of some alerts. promtool comes from Debian's ``prometheus`` package
(Makefile ``HOST_PACKAGES``): without it these tests are skipped, and fail under ``CI=true``.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import re
import shutil
import subprocess

import pytest
import yaml

from php_helpers import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES_DIR = os.path.join(ROOT, 'roles', 'monitoring', 'files', 'rules')
RULE_FILES = sorted(glob.glob(os.path.join(RULES_DIR, '*.rules.yml')))
FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'alert_rules')
TEST_FILES = sorted(glob.glob(os.path.join(FIXTURES, '*.test.yml')))
# Runs against the shipped rule files (its cases give exp_annotations); every other fixture against copies without
# annotations.
ANNOTATED = os.path.join(FIXTURES, 'annotations.test.yml')
SEVERITIES = ('critical', 'warning')
# The lab test of issue #24 needs these to fire within 2 minutes of the fault, with scrape and evaluation
# intervals of 15 s: a `for` of at most a minute.
LAB_TIMED = ('TargetDown', 'HAProxyWebNodeOutOfRotation', 'RedisMasterChanged', 'RedisMasterWithoutReplica',
             'PostgreSQLReplicaMissing')


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def _alerts():
    """{alert name: (rule file, rule)} over every rule file."""
    alerts = {}
    for path in RULE_FILES:
        for group in _load(path)['groups']:
            for rule in group['rules']:
                if 'alert' in rule:
                    assert rule['alert'] not in alerts, 'alert %s is defined twice' % rule['alert']
                    alerts[rule['alert']] = (os.path.basename(path), rule)
    return alerts


def _seconds(duration):
    """A Prometheus duration of the rule files (1m30s, 30s, 1h, 1d) in seconds."""
    units = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800, 'y': 31536000}
    parts = re.findall(r'(\d+)(ms|s|m|h|d|w|y)', duration)
    assert parts and ''.join(n + u for n, u in parts) == duration, 'not a duration: %r' % duration
    return sum(int(number) * units[unit] for number, unit in parts)


def _cases():
    """[(fixture, alert name, eval_time, fires)] of every alert_rule_test of every fixture."""
    cases = []
    for path in TEST_FILES:
        for test in _load(path)['tests']:
            for case in test.get('alert_rule_test') or []:
                cases.append((os.path.basename(path), case['alertname'], case['eval_time'],
                              bool(case.get('exp_alerts'))))
    return cases


@pytest.fixture(scope='module')
def promtool():
    path = shutil.which('promtool')
    require(path is not None, 'promtool is not installed (Debian package prometheus, Makefile HOST_PACKAGES)')
    return path


def _run(argv, cwd=None):
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    return result.returncode, result.stdout


def _without_annotations(target):
    """Copies of the rule files without annotations in ``target``; {shipped path: copy}."""
    copies = {}
    for path in RULE_FILES:
        data = _load(path)
        for group in data['groups']:
            for rule in group['rules']:
                rule.pop('annotations', None)
        copy = os.path.join(str(target), os.path.basename(path))
        with open(copy, 'w') as handle:
            yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
        copies[os.path.realpath(path)] = copy
    return copies


def _point_at(test_file, copies, target):
    """The fixture, written to ``target`` with its rule_files pointing at the copies."""
    data = _load(test_file)
    rule_files = []
    for name in data['rule_files']:
        shipped = os.path.realpath(os.path.join(os.path.dirname(test_file), name))
        assert shipped in copies, '%s: rule file %s is not one of %s' % (test_file, name, RULES_DIR)
        rule_files.append(copies[shipped])
    data['rule_files'] = rule_files
    path = os.path.join(str(target), os.path.basename(test_file))
    with open(path, 'w') as handle:
        yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
    return path


def test_rule_files_found():
    assert len(RULE_FILES) >= 7, RULE_FILES
    assert len(_alerts()) >= 30
    assert ANNOTATED in TEST_FILES


def test_promtool_check_rules(promtool):
    code, output = _run([promtool, 'check', 'rules'] + RULE_FILES)
    assert code == 0, output
    assert output.count('SUCCESS') == len(RULE_FILES), output


@pytest.mark.parametrize('name', sorted(_alerts()))
def test_alert_has_severity_and_instructions(name):
    path, rule = _alerts()[name]
    assert (rule.get('labels') or {}).get('severity') in SEVERITIES, '%s (%s): severity' % (name, path)
    annotations = rule.get('annotations') or {}
    assert len(annotations.get('summary', '')) >= 20, '%s (%s): summary' % (name, path)
    # The description tells the operator what to do: at least a command or a playbook in backquotes, or one of
    # the collection's playbooks.
    description = annotations.get('description', '')
    assert len(description) >= 100, '%s (%s): description' % (name, path)
    assert '`' in description or 'playbooks/' in description, '%s (%s): no command in the description' % (name, path)
    assert 'for' in rule, '%s (%s): no for:' % (name, path)


def test_lab_timed_alerts_fire_within_two_minutes():
    alerts = _alerts()
    for name in LAB_TIMED:
        assert name in alerts, name
        assert _seconds(alerts[name][1]['for']) <= 60, '%s: for %s, the lab needs it firing within 2 minutes' % (
            name, alerts[name][1]['for'])


def test_every_rule_file_has_a_fixture():
    tested = set()
    for path in TEST_FILES:
        for name in _load(path)['rule_files']:
            tested.add(os.path.realpath(os.path.join(FIXTURES, name)))
    missing = [os.path.basename(p) for p in RULE_FILES if os.path.realpath(p) not in tested]
    assert missing == [], 'no fixture in %s loads %s' % (FIXTURES, ', '.join(missing))


def test_every_alert_fires_and_stays_quiet_in_a_fixture():
    alerts = _alerts()
    cases = _cases()
    unknown = sorted(set(case[1] for case in cases) - set(alerts))
    assert unknown == [], 'fixtures test alerts no rule file defines: %s' % ', '.join(unknown)
    fires = set(case[1] for case in cases if case[3])
    quiet = set(case[1] for case in cases if not case[3])
    problems = ['%s never fires' % name for name in sorted(alerts) if name not in fires]
    problems += ['%s never stays quiet' % name for name in sorted(alerts) if name not in quiet]
    assert problems == [], 'fixtures in %s: %s' % (FIXTURES, '; '.join(problems))


@pytest.mark.parametrize('test_file', [os.path.basename(p) for p in TEST_FILES if p != ANNOTATED])
def test_promtool_test_rules(promtool, tmp_path, test_file):
    copies = _without_annotations(tmp_path)
    path = _point_at(os.path.join(FIXTURES, test_file), copies, tmp_path)
    code, output = _run([promtool, 'test', 'rules', path], cwd=str(tmp_path))
    assert code == 0, output
    assert 'SUCCESS' in output, output


def test_promtool_test_rules_annotations(promtool):
    code, output = _run([promtool, 'test', 'rules', os.path.basename(ANNOTATED)], cwd=FIXTURES)
    assert code == 0, output


def test_a_wrong_expectation_fails(promtool, tmp_path):
    """The harness can fail: a fixture that expects TargetDown to stay quiet while a target is down."""
    copies = _without_annotations(tmp_path)
    fixture = {
        'rule_files': [copies[os.path.realpath(os.path.join(RULES_DIR, 'targets.rules.yml'))]],
        'evaluation_interval': '15s',
        'tests': [{
            'interval': '15s',
            'input_series': [{'series': 'up{job="node", instance="web1"}', 'values': '0x10'}],
            'alert_rule_test': [{'eval_time': '2m', 'alertname': 'TargetDown', 'exp_alerts': []}],
        }],
    }
    path = os.path.join(str(tmp_path), 'wrong.test.yml')
    with open(path, 'w') as handle:
        yaml.safe_dump(fixture, handle)
    code, output = _run([promtool, 'test', 'rules', path], cwd=str(tmp_path))
    assert code != 0, output
    assert 'TargetDown' in output, output


def test_every_alert_is_in_the_docs():
    """docs/monitoring.md, "Alert rules", has a table row for every alert with its severity and for."""
    with open(os.path.join(ROOT, 'docs', 'monitoring.md')) as handle:
        rows = [line for line in handle.read().split('\n## Alert rules', 1)[1].splitlines() if line.startswith('| `')]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip('|').split(' | ')]
        if len(cells) == 6:  # | alert | severity | for | fires when | reads | what to do |
            documented[cells[0].strip('`')] = (cells[1], cells[2])
    alerts = _alerts()
    problems = ['%s is not in the table' % name for name in sorted(alerts) if name not in documented]
    problems += ['%s is documented but not defined' % name for name in sorted(documented) if name not in alerts]
    problems += ['%s: the table says %s, for %s' % ((name,) + documented[name])
                 for name, (_file, rule) in sorted(alerts.items())
                 if name in documented and documented[name] != (rule['labels']['severity'], rule['for'])]
    assert problems == [], 'docs/monitoring.md: ' + '; '.join(problems)
