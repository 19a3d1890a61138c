# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Debian 12 pgbouncer exporter wrapper of role exporters (roles/exporters/files/nextcloud-ha-pgbouncer-exporter).

Debian's prometheus-pgbouncer-exporter 1.7, psycopg2 and prometheus_client are not in the test environment: small
stand-ins of the parts the wrapper touches replace them (the package's collectors as Debian 12 ships them: SHOW STATS
read by column names of PgBouncer before 1.8). The rows are the columns PgBouncer 1.18 answers (the lab's).
"""

from __future__ import absolute_import, division, print_function

import os
import sys
import types

import pytest

from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, 'roles', 'exporters', 'files', 'nextcloud-ha-pgbouncer-exporter')

STATS_118 = [{'database': 'nextcloud', 'total_xact_count': 2659, 'total_query_count': 2666, 'total_received': 138896,
              'total_sent': 398088, 'total_xact_time': 6638405, 'total_query_time': 6638048}]
LISTS_118 = [('databases', 2), ('users', 2), ('pools', 2), ('free_clients', 49), ('used_clients', 1),
             ('login_clients', 0), ('free_servers', 0), ('used_servers', 1), ('dns_names', 0), ('dns_zones', 0),
             ('dns_queries', 0), ('dns_pending', 0)]


class Error(Exception):
    pass


class Gauge(object):
    def __init__(self, name, documentation, value=None, labels=None):
        self.name, self.samples = name, []
        if value is not None:
            self.samples.append(((), value))

    def add_metric(self, labels, value):
        self.samples.append((tuple(labels), value))


class PgBouncer(object):
    """The admin console: answers SHOW commands, or fails every one while down."""

    def __init__(self):
        self.up = True
        self.connections = 0

    def answer(self, query):
        if not self.up:
            raise Error('server closed the connection unexpectedly')
        return query


@pytest.fixture
def wrapper(monkeypatch):
    bouncer = PgBouncer()
    psycopg2 = types.ModuleType('psycopg2')
    psycopg2.Error = Error
    client, core = types.ModuleType('prometheus_client'), types.ModuleType('prometheus_client.core')
    core.GaugeMetricFamily = Gauge
    core.REGISTRY = types.SimpleNamespace(collectors=[])
    core.REGISTRY.register = core.REGISTRY.collectors.append
    package = types.ModuleType('prometheus_pgbouncer_exporter')
    cli, collectors, utils = (types.ModuleType('prometheus_pgbouncer_exporter.' + name)
                              for name in ('cli', 'collectors', 'utils'))

    class Cursor(object):
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def execute(self, query):
            self.result = bouncer.answer(query)

        def fetchall(self):
            return []

    class Connection(object):
        closed = 0

        def cursor(self):
            if not bouncer.up:
                raise Error('connection refused')
            return Cursor()

        def close(self):
            self.closed = 1

    def get_connection(user, port, host):
        bouncer.connections += 1
        return Connection()

    def by_column(connection, key):
        with connection.cursor() as cursor:
            cursor.execute('SHOW %s;' % key)
        return {'STATS': STATS_118, 'POOLS': [], 'DATABASES': []}[key]

    def by_row(connection, key):
        with connection.cursor() as cursor:
            cursor.execute('SHOW %s;' % key)
        return dict(LISTS_118)

    utils.get_connection, utils.get_data_by_named_column, utils.get_data_by_named_row = get_connection, by_column, by_row

    class NamedColumnCollector(object):
        namespace = 'pgbouncer'

        def __init__(self, connection, databases=None):
            self.connection, self.databases = connection, databases

        def collect(self):  # the package's: every key of metrics must be a column (KeyError otherwise)
            raise AssertionError('the wrapper replaces it')

    class StatsCollector(NamedColumnCollector):
        query_parameter, labels = 'STATS', ['database']
        metrics = {'total_requests': ('requests_total', ''), 'total_received': ('received_bytes_total', ''),
                   'total_sent': ('sent_bytes_total', ''), 'total_query_time': ('query_microseconds_total', '')}

        def get_labels_for_row(self, row):
            return [row['database']]

    class ListsCollector(object):
        namespace = 'pgbouncer'
        metrics = dict((item[0], (item[0], '')) for item in LISTS_118 + [('not_in_118', 0)])

        def __init__(self, connection):
            self.connection = connection

    collectors.NamedColumnCollector, collectors.StatsCollector = NamedColumnCollector, StatsCollector
    collectors.ListsCollector = ListsCollector

    def main():
        connection = cli.get_connection('prometheus', '6432', '/var/run/postgresql')
        core.REGISTRY.register(StatsCollector(connection=connection))
        core.REGISTRY.register(ListsCollector(connection=connection))

    cli.main = main
    package.cli, package.collectors, package.utils = cli, collectors, utils
    for name, module in {'psycopg2': psycopg2, 'prometheus_client': client, 'prometheus_client.core': core,
                         'prometheus_pgbouncer_exporter': package, 'prometheus_pgbouncer_exporter.cli': cli,
                         'prometheus_pgbouncer_exporter.collectors': collectors,
                         'prometheus_pgbouncer_exporter.utils': utils}.items():
        monkeypatch.setitem(sys.modules, name, module)
    load_script(SCRIPT, 'nextcloud_ha_pgbouncer_exporter').main()
    return bouncer, core.REGISTRY


def scrape(registry):
    samples = {}
    for collector in registry.collectors:
        for family in collector.collect():
            for labels, value in family.samples:
                samples[(family.name,) + labels] = value
    return samples


def test_up_and_the_renamed_column(wrapper):
    bouncer, registry = wrapper
    assert bouncer.connections == 0  # no connection at start: a PgBouncer not up yet does not end the exporter
    samples = scrape(registry)
    assert samples[('pgbouncer_up',)] == 1
    assert samples[('pgbouncer_requests_total', 'nextcloud')] == 2666  # total_query_count, renamed in 1.8
    assert samples[('pgbouncer_received_bytes_total', 'nextcloud')] == 138896
    assert samples[('pgbouncer_used_clients',)] == 1
    assert ('pgbouncer_not_in_118',) not in samples  # a list PgBouncer does not report is skipped


def test_pgbouncer_down_is_up_0_and_nothing_else_then_back(wrapper):
    bouncer, registry = wrapper
    scrape(registry)
    bouncer.up = False
    assert scrape(registry) == {('pgbouncer_up',): 0}
    bouncer.up = True
    samples = scrape(registry)
    assert samples[('pgbouncer_up',)] == 1 and ('pgbouncer_requests_total', 'nextcloud') in samples
    assert bouncer.connections == 2  # connected again after the error
