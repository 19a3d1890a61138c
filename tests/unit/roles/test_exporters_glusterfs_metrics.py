# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The GlusterFS metrics script of role exporters (roles/exporters/files/nextcloud-ha-glusterfs-metrics).

The fixtures in tests/unit/fixtures/glusterfs are the gluster CLI's answers recorded on the lab (GlusterFS 10.3,
Debian 12, the replica 2 volume of role glusterfs, both bricks up). The failure cases are derived from them the
way GlusterFS answers: a brick whose process is down is listed with status 0, a brick of a peer glusterd cannot
reach is not listed at all by `volume status`, and its heal summary says '-'.
"""

from __future__ import absolute_import, division, print_function

import os
import re

import pytest

from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'roles', 'exporters', 'files', 'nextcloud-ha-glusterfs-metrics')
FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'glusterfs')
BRICK1 = '10.213.194.11:/srv/glusterfs/nextcloud/brick'
BRICK2 = '10.213.194.12:/srv/glusterfs/nextcloud/brick'


def _load():
    return load_script(SCRIPT, 'nextcloud_ha_glusterfs_metrics')


metrics = _load()


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def _brick_down(text, host):
    """The status answer with the brick of host listed as offline (its process down)."""
    start = text.index('<hostname>%s</hostname>' % host)
    return text[:start] + text[start:].replace('<status>1</status>', '<status>0</status>', 1)


def _peer_gone(text, host):
    """The status answer without the brick of host (glusterd cannot reach its peer)."""
    return re.sub(r'\s*<node>\s*<hostname>%s</hostname>.*?</node>' % re.escape(host), '', text, flags=re.S)


def test_bricks_of_the_recorded_volume():
    assert metrics.parse_volume_bricks(fixture('volume_info.xml')) == [BRICK1, BRICK2]


def test_both_bricks_online_in_the_recorded_status():
    assert metrics.parse_volume_status(fixture('volume_status_detail.xml')) == {BRICK1: True, BRICK2: True}


def test_nothing_waits_for_heal_in_the_recorded_summary():
    assert metrics.parse_heal_summary(fixture('heal_info_summary.xml')) == {BRICK1: 0, BRICK2: 0}


def test_a_brick_whose_process_is_down_is_offline():
    status = _brick_down(fixture('volume_status_detail.xml'), '10.213.194.12')
    assert metrics.parse_volume_status(status) == {BRICK1: True, BRICK2: False}


def test_pending_heal_entries_and_an_unconnected_brick():
    summary = fixture('heal_info_summary.xml')
    summary = summary.replace('<totalNumberOfEntries>0</totalNumberOfEntries>',
                              '<totalNumberOfEntries>17</totalNumberOfEntries>', 1)
    summary = summary.replace('<status>Connected</status>\n        <totalNumberOfEntries>0</totalNumberOfEntries>',
                              '<status>Transport endpoint is not connected</status>\n'
                              '        <totalNumberOfEntries>-</totalNumberOfEntries>')
    assert metrics.parse_heal_summary(summary) == {BRICK1: 17}


def test_an_error_answer_is_refused():
    text = fixture('volume_status_detail.xml').replace('<opRet>0</opRet>', '<opRet>-1</opRet>').replace(
        '<opErrstr/>', '<opErrstr>Volume nextcloud is not started</opErrstr>')
    with pytest.raises(metrics.GlusterError, match='not started'):
        metrics.parse_volume_status(text)
    with pytest.raises(metrics.GlusterError):
        metrics.parse_volume_status('Connection failed. Please check if gluster daemon is operational.')


def _fake_gluster(answers):
    def gluster(*args):
        answer = answers[' '.join(args)]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return gluster


@pytest.fixture
def healthy():
    return {
        'volume list': fixture('volume_list.txt'),
        'volume info nextcloud --xml': fixture('volume_info.xml'),
        'volume status nextcloud detail --xml': fixture('volume_status_detail.xml'),
        'volume heal nextcloud info summary --xml': fixture('heal_info_summary.xml'),
    }


def _run(monkeypatch, tmp_path, answers, volumes=()):
    monkeypatch.setattr(metrics, 'gluster', _fake_gluster(answers))
    output = tmp_path / 'nextcloud_ha_glusterfs.prom'
    assert metrics.main(['--output', str(output)] + list(volumes)) == 0
    assert sorted(os.listdir(str(tmp_path))) == ['nextcloud_ha_glusterfs.prom']  # no temporary file left
    samples = {}
    for line in output.read_text().splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            samples[name] = float(value)
    return samples


def test_the_healthy_volume(monkeypatch, tmp_path, healthy):
    samples = _run(monkeypatch, tmp_path, healthy)
    assert samples.pop('nextcloud_ha_glusterfs_last_run_timestamp_seconds') > 1.7e9
    assert samples == {
        'nextcloud_ha_glusterfs_up{volume="nextcloud"}': 1,
        'nextcloud_ha_glusterfs_brick_up{volume="nextcloud",brick="%s"}' % BRICK1: 1,
        'nextcloud_ha_glusterfs_brick_up{volume="nextcloud",brick="%s"}' % BRICK2: 1,
        'nextcloud_ha_glusterfs_heal_pending{volume="nextcloud",brick="%s"}' % BRICK1: 0,
        'nextcloud_ha_glusterfs_heal_pending{volume="nextcloud",brick="%s"}' % BRICK2: 0,
    }


def test_a_brick_of_an_unreachable_peer_is_down(monkeypatch, tmp_path, healthy):
    healthy['volume status nextcloud detail --xml'] = _peer_gone(healthy['volume status nextcloud detail --xml'],
                                                                 '10.213.194.12')
    samples = _run(monkeypatch, tmp_path, healthy)
    assert samples['nextcloud_ha_glusterfs_up{volume="nextcloud"}'] == 1
    assert samples['nextcloud_ha_glusterfs_brick_up{volume="nextcloud",brick="%s"}' % BRICK1] == 1
    assert samples['nextcloud_ha_glusterfs_brick_up{volume="nextcloud",brick="%s"}' % BRICK2] == 0


def test_status_without_answer_is_volume_down(monkeypatch, tmp_path, healthy):
    healthy['volume status nextcloud detail --xml'] = metrics.GlusterError('timed out')
    samples = _run(monkeypatch, tmp_path, healthy, volumes=['nextcloud'])
    assert samples['nextcloud_ha_glusterfs_up{volume="nextcloud"}'] == 0
    # The bricks the volume has are still reported, as not known online.
    assert samples['nextcloud_ha_glusterfs_brick_up{volume="nextcloud",brick="%s"}' % BRICK2] == 0
    assert not [name for name in samples if name.startswith('nextcloud_ha_glusterfs_heal_pending')]


def test_glusterd_not_answering_at_all(monkeypatch, tmp_path):
    samples = _run(monkeypatch, tmp_path, {'volume list': metrics.GlusterError('Connection failed')})
    assert samples.pop('nextcloud_ha_glusterfs_last_run_timestamp_seconds') > 1.7e9
    assert samples == {'nextcloud_ha_glusterfs_up': 0}


def test_an_old_file_is_replaced_whole(monkeypatch, tmp_path, healthy):
    (tmp_path / 'nextcloud_ha_glusterfs.prom').write_text('nextcloud_ha_glusterfs_up{volume="old"} 1\n')
    samples = _run(monkeypatch, tmp_path, healthy)
    assert 'nextcloud_ha_glusterfs_up{volume="old"}' not in samples


def test_label_values_are_escaped():
    text = metrics.render([('a"b', True, {'h:/p\\q': True}, {})], 0)
    assert 'nextcloud_ha_glusterfs_up{volume="a\\"b"} 1' in text
    assert 'brick="h:/p\\\\q"' in text
