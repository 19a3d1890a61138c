# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PHP as the oracle: load files with the real php-cli and report what PHP sees.

Tests that use these helpers (``needs_php``) are skipped only when ``php`` is
not installed; in CI (``CI=true``, as in ``make blank``) or with
``NCHA_REQUIRE_LAB=1`` they fail instead, so a php-cli dropped from the install
steps cannot pass unnoticed.
"""

# Exact types matter here (True is not 1, 1.0 is not 1): type() checks are deliberate.
# pylint: disable=unidiomatic-typecheck
import math
import base64
import json
import os
import shutil
import subprocess
import tempfile

import pytest

PHP = shutil.which('php')

# config.php fixtures (tests/unit/plugins/module_utils/fixtures), copied into a test's folder with an old mtime.
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'plugins', 'module_utils', 'fixtures')
OLD = 1000000000  # an mtime in 2001: any write shows


def put_fixture(folder, name, target='config.php', mode=0o640):
    path = os.path.join(str(folder), target)
    shutil.copyfile(os.path.join(FIXTURES, name + '.config.php'), path)
    os.chmod(path, mode)
    os.utime(path, (OLD, OLD))
    return path


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def require(condition, reason):
    """Skip the test unless ``condition`` holds; in CI or with NCHA_REQUIRE_LAB=1 fail it instead.

    The same rule as ``require`` in tests/integration/conftest.py (which is not importable from here).
    """
    if condition:
        return
    if os.environ.get('CI') == 'true' or os.environ.get('NCHA_REQUIRE_LAB') == '1':
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def php_required():
    """The fixture behind ``needs_php`` (the conftest.py files of tests/unit and tests/playbook import it)."""
    require(PHP is not None, 'php-cli is not installed (Makefile HOST_PACKAGES)')


needs_php = pytest.mark.usefixtures('php_required')

# Classes some real config.php files refer to; php-cli often lacks the extensions.
STUBS = r'''
if (!class_exists('RedisCluster')) {
    class RedisCluster { const FAILOVER_NONE = 0; const FAILOVER_ERROR = 1; const FAILOVER_DISTRIBUTE = 2; const FAILOVER_DISTRIBUTE_SLAVES = 3; }
}
if (!class_exists('Memcached')) {
    class Memcached { const OPT_CONNECT_TIMEOUT = 14; const OPT_RETRY_TIMEOUT = 15; const OPT_COMPRESSION = -1001; }
}
if (!class_exists('PDO')) {
    class PDO { const ATTR_TIMEOUT = 2; const ATTR_PERSISTENT = 12; }
}
putenv('NC_TEST_ENV=from-env');
$nc_test_name = 'web1';
'''

_LOADER = STUBS + r'''
$out = [];
foreach (array_slice($argv, 1) as $file) {
    $CONFIG = null;
    include $file;
    $json = json_encode($CONFIG, JSON_PRESERVE_ZERO_FRACTION | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE);
    $out[] = [
        'json' => $json,
        'export' => base64_encode("<?php\n\$CONFIG = " . var_export($CONFIG, true) . ";\n"),
    ];
}
echo json_encode($out);
'''


def run_php(code, args=(), stdin=None):
    """Run ``php -r code -- args``; returns stdout bytes, raises on failure."""
    # -n: no php.ini, so the local configuration cannot change the outcome (and PHP starts 3x faster);
    # serialize_precision is then PHP's default -1, which is what var_export() uses for floats.
    proc = subprocess.run([PHP, '-n', '-r', code, '--'] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    if proc.returncode != 0 or proc.stderr.strip():
        raise AssertionError('php failed (rc %d): %s %s' % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc.stdout


def php_load_files(paths):
    """Include each file with PHP; returns [(data from json_encode($CONFIG), var_export bytes)]."""
    result = []
    for item in json.loads(run_php(_LOADER, paths)):
        result.append((json.loads(item['json']), base64.b64decode(item['export'])))
    return result


def php_load_texts(texts):
    """Like ``php_load_files()`` for file contents (str or bytes)."""
    folder = tempfile.mkdtemp(prefix='php-oracle-')
    try:
        paths = []
        for index, text in enumerate(texts):
            path = os.path.join(folder, '%d.config.php' % index)
            with open(path, 'wb') as handle:
                handle.write(text.encode('utf-8', 'surrogateescape') if isinstance(text, str) else text)
            paths.append(path)
        return php_load_files(paths)
    finally:
        shutil.rmtree(folder)


def php_load_text(text):
    return php_load_texts([text])[0]


def php_edit(text, assignments=(), unsets=()):
    """What PHP itself would write: include, assign (key, PHP source) pairs, unset keys, var_export.

    This is the native way of editing config.php (what Nextcloud does).
    Returns the bytes of the new file.
    """
    folder = tempfile.mkdtemp(prefix='php-oracle-')
    try:
        path = os.path.join(folder, 'config.php')
        with open(path, 'wb') as handle:
            handle.write(text.encode('utf-8', 'surrogateescape') if isinstance(text, str) else text)
        lines = [STUBS, 'include $argv[1];']
        for key, source in assignments:
            lines.append('$CONFIG[%s] = %s;' % (source_key(key), source))
        for key in unsets:
            lines.append('unset($CONFIG[%s]);' % source_key(key))
        lines.append('echo "<?php\\n\\$CONFIG = " . var_export($CONFIG, true) . ";\\n";')
        return run_php('\n'.join(lines), [path])
    finally:
        shutil.rmtree(folder)


def source_key(key):
    if isinstance(key, int):
        return str(key)
    return "'" + key.replace('\\', '\\\\').replace("'", "\\'") + "'"


def json_like(value):
    """What json_encode() makes of a value as PHP holds it (see to_python in module_utils)."""
    if isinstance(value, dict):
        if all(type(key) is int and key == index for index, key in enumerate(value)):
            return [json_like(item) for item in value.values()]
        return dict((str(key), json_like(item)) for key, item in value.items())
    if isinstance(value, list):
        return [json_like(item) for item in value]
    return value


def strict_equal(left, right):
    """Equality that tells 1, 1.0 and True apart (json.loads keeps those types)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(strict_equal(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(strict_equal(a, b) for a, b in zip(left, right))
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return left == right
