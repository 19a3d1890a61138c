#!/usr/bin/env python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: editing a config.php with 200 keys, ours against PHP itself.

    .venv/bin/python tests/benchmarks/bench_config_php.py [--edits 1000] [--process-edits 200] [--ansible-edits 10]

Each edit sets one existing key ('loglevel') to a new value and writes the
file back, so every edit really changes and rewrites the file.

Rows:

* python in-process: what the module does for one edit, with the module_utils
  functions in a warm interpreter: read, parse, edit, render, read-back check
  (parse the new text again), then mkstemp in the same directory, write,
  fsync, rename. Also without fsync (PHP's write does not fsync), and the
  parse and edit+render parts alone.
* PHP in one process: a loop of include + $CONFIG['loglevel'] = ... +
  var_export + file_put_contents. That is the lower bound of doing it
  natively (it is what Nextcloud does, minus locking).
* one process per edit, for PHP (php -r) and for Python (a fresh interpreter
  importing module_utils): an Ansible task always starts a new process on the
  host, so this is the fair comparison for the module's real use; the
  in-process rows compare the algorithms.
* the module through Ansible (ansible localhost -m ...): the full cost of a
  task, dominated by Ansible itself.

The ratio column is relative to the PHP in-process loop. Not a timed test.
"""

from __future__ import print_function

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, 'collections')
sys.path.insert(0, COLLECTIONS)

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import (  # noqa: E402
    decode,
    edit_config,
    encode,
    parse_config,
    render_config,
    to_php,
)

KEY = 'loglevel'

PHP_LOOP = r'''
$path = $argv[1];
$n = (int) $argv[2];
for ($i = 0; $i < $n; $i++) {
    include $path;
    $CONFIG['loglevel'] = ($i + 1) % 5;
    file_put_contents($path, "<?php\n\$CONFIG = " . var_export($CONFIG, true) . ";\n");
}
'''

PHP_ONE = r'''
include $argv[1];
$CONFIG['loglevel'] = (int) $argv[2];
file_put_contents($argv[1], "<?php\n\$CONFIG = " . var_export($CONFIG, true) . ";\n");
'''

PYTHON_ONE = r'''
import os, sys, tempfile
sys.path.insert(0, %r)
from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import decode, edit_config, encode, parse_config
path, value = sys.argv[1], int(sys.argv[2])
with open(path, 'rb') as handle:
    text = decode(handle.read())
result = edit_config(parse_config(text), {'loglevel': value})
fd, tmp = tempfile.mkstemp(prefix='.config.php.', suffix='.tmp', dir=os.path.dirname(path))
with os.fdopen(fd, 'wb') as handle:
    handle.write(encode(result.text))
    handle.flush()
    os.fsync(handle.fileno())
os.rename(tmp, path)
''' % COLLECTIONS


def make_config(keys=200):
    """A realistic config.php with ``keys`` top-level keys (Nextcloud keys, then app settings)."""
    data = {
        'instanceid': 'oc1a2b3c4d5e',
        'passwordsalt': 'x' * 30,
        'secret': 'y' * 48,
        'trusted_domains': ['localhost', 'cloud.example.org', '10.0.0.21', '10.0.0.22'],
        'datadirectory': '/srv/ncdata',
        'dbtype': 'pgsql',
        'version': '32.0.2.2',
        'overwrite.cli.url': 'https://cloud.example.org',
        'dbname': 'nextcloud',
        'dbhost': '127.0.0.1:6432',
        'dbport': '',
        'dbtableprefix': 'oc_',
        'dbuser': 'nextcloud',
        'dbpassword': 'z' * 32,
        'installed': True,
        'memcache.local': '\\OC\\Memcache\\APCu',
        'memcache.distributed': '\\OC\\Memcache\\Redis',
        'memcache.locking': '\\OC\\Memcache\\Redis',
        'redis': {'host': 'redis1', 'port': 6379, 'timeout': 1.5, 'read_timeout': 1.5, 'dbindex': 0},
        'maintenance': False,
        KEY: 2,
        'trusted_proxies': ['10.0.0.10', '10.0.0.11'],
        'forwarded_for_headers': ['HTTP_X_FORWARDED_FOR'],
        'enabledPreviewProviders': ['OC\\Preview\\PNG', 'OC\\Preview\\JPEG', 'OC\\Preview\\GIF'],
    }
    index = 0
    while len(data) < keys:
        kind = index % 5
        name = 'app_setting_%03d' % index
        if kind == 0:
            data[name] = 'value %d with some text' % index
        elif kind == 1:
            data[name] = index * 7
        elif kind == 2:
            data[name] = index % 2 == 0
        elif kind == 3:
            data[name] = ['item-%d' % item for item in range(3)]
        else:
            data[name] = {'enabled': True, 'url': 'https://app%d.example.org' % index, 'timeout': 2.5}
        index += 1
    return to_php(data)


def timed(function, edits):
    start = time.perf_counter()
    function(edits)
    return time.perf_counter() - start


def python_in_process(path, fsync=True):
    def run(edits):
        folder = os.path.dirname(path)
        for index in range(edits):
            with open(path, 'rb') as handle:
                text = decode(handle.read())
            result = edit_config(parse_config(text), {KEY: (index + 1) % 5})
            fd, tmp = tempfile.mkstemp(prefix='.config.php.', suffix='.tmp', dir=folder)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(encode(result.text))
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.rename(tmp, path)
    return run


def python_parse_only(text):
    def run(edits):
        for _index in range(edits):
            parse_config(text)
    return run


def python_edit_render_only(document):
    def run(edits):
        for index in range(edits):
            edit_config(document, {KEY: (index + 1) % 5})
    return run


def php_loop(php, path):
    def run(edits):
        subprocess.check_call([php, '-n', '-r', PHP_LOOP, '--', path, str(edits)])
    return run


def php_per_process(php, path):
    def run(edits):
        for index in range(edits):
            subprocess.check_call([php, '-n', '-r', PHP_ONE, '--', path, str((index + 1) % 5)])
    return run


def python_per_process(path):
    def run(edits):
        for index in range(edits):
            subprocess.check_call([sys.executable, '-c', PYTHON_ONE, path, str((index + 1) % 5)])
    return run


def ansible_module(path):
    ansible = os.path.join(os.path.dirname(sys.executable), 'ansible')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0')

    def run(edits):
        for index in range(edits):
            args = '{"path": "%s", "settings": {"%s": %d}}' % (path, KEY, (index + 1) % 5)
            subprocess.check_call([ansible, 'localhost', '-m', 'nextcloud_ha.cluster.config_php', '-a', args],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--keys', type=int, default=200, help='top-level keys in the config.php (default 200)')
    parser.add_argument('--edits', type=int, default=1000, help='edits for the in-process rows (default 1000)')
    parser.add_argument('--process-edits', type=int, default=200, help='edits for the process-per-edit rows (default 200)')
    parser.add_argument('--ansible-edits', type=int, default=10, help='edits through ansible (default 10, 0 to skip)')
    options = parser.parse_args()

    php = shutil.which('php')
    data = make_config(options.keys)
    text = render_config(data)
    folder = tempfile.mkdtemp(prefix='bench-config-php-')
    path = os.path.join(folder, 'config.php')

    def fresh():
        with open(path, 'wb') as handle:
            handle.write(encode(text))

    rows = []

    def measure(name, function, edits, check=True):
        fresh()
        seconds = timed(function, edits)
        if check:
            with open(path, 'rb') as handle:
                final = parse_config(decode(handle.read()))
            assert len(final.data) == options.keys and final.data[KEY] == edits % 5, name
        rows.append((name, edits, seconds))

    try:
        print('config.php: %d keys, %d bytes; %s; python %s' % (
            options.keys, len(encode(text)), php and subprocess.check_output([php, '-n', '-r', 'echo "PHP " . PHP_VERSION;']).decode()
            or 'php not installed', sys.version.split()[0]))
        if php:
            measure('PHP in one process: include, set, var_export, write', php_loop(php, path), options.edits)
        measure('python in-process: module path (atomic write, fsync)', python_in_process(path), options.edits)
        measure('python in-process: module path without fsync', python_in_process(path, fsync=False), options.edits)
        measure('python in-process: parse only', python_parse_only(text), options.edits, check=False)
        measure('python in-process: edit + render + read-back check', python_edit_render_only(parse_config(text)),
                options.edits, check=False)
        if php:
            measure('PHP one process per edit (php -n -r)', php_per_process(php, path), options.process_edits)
        measure('python one process per edit (module path)', python_per_process(path), options.process_edits)
        if options.ansible_edits:
            measure('module through ansible (ansible localhost -m)', ansible_module(path), options.ansible_edits)
    finally:
        shutil.rmtree(folder)

    base = rows[0][2] / rows[0][1] if php else None
    header = ('method', 'edits', 'total s', 'per edit ms', 'ratio to PHP')
    width = max(len(row[0]) for row in rows)
    print()
    print('%-*s  %6s  %8s  %11s  %12s' % ((width,) + header))
    print('%s  %s  %s  %s  %s' % ('-' * width, '-' * 6, '-' * 8, '-' * 11, '-' * 12))
    for name, edits, seconds in rows:
        per_edit = seconds / edits
        ratio = '%.1fx' % (per_edit / base) if base else 'n/a'
        print('%-*s  %6d  %8.3f  %11.3f  %12s' % (width, name, edits, seconds, per_edit * 1000, ratio))
    if php:
        per = dict((name, seconds / edits) for name, edits, seconds in rows)
        print()
        print('process per edit, python vs PHP: %.1fx' % (
            per['python one process per edit (module path)'] / per['PHP one process per edit (php -n -r)']))


if __name__ == '__main__':
    main()
