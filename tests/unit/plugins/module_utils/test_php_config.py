# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the config.php parser and writer on real-world shaped files."""

# Exact types matter here (True is not 1, 1.0 is not 1): type() checks are deliberate.
# pylint: disable=unidiomatic-typecheck
import difflib
import os
import re

import pytest

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import (
    EMPTY_CONFIG,
    INT_MIN,
    PhpConfigError,
    PhpExpr,
    PhpParseError,
    PhpValueError,
    decode,
    edit_config,
    edit_config_text,
    encode,
    export_value,
    key_warning,
    parse_config,
    parse_expression,
    php_value,
    render_config,
    same_value,
    to_php,
    to_python,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name + '.config.php'), 'rb') as handle:
        return decode(handle.read())


def changed_lines(before, after):
    """Lines removed and added between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(True), after.splitlines(True)):
        if line.startswith('- '):
            removed.append(line[2:])
        elif line.startswith('+ '):
            added.append(line[2:])
    return removed, added


# ---------------------------------------------------------------------------
# Files Nextcloud wrote
# ---------------------------------------------------------------------------

class TestNextcloudWritten:

    def test_parses_every_value_with_its_type(self):
        doc = parse_config(fixture('nextcloud_written'))
        data = to_python(doc.data)
        assert doc.lossless
        assert data['trusted_domains'] == ['localhost', '10.0.0.22']
        assert data['installed'] is True
        assert data['twofactor_enforced'] == 'false'
        assert data['redis'] == {'host': 'redis1', 'port': 6379, 'timeout': 1.5}
        assert type(data['redis']['timeout']) is float
        assert data['memcache.local'] == '\\OC\\Memcache\\APCu'
        assert data['twofactor_enforced_groups'] == []
        assert data['enabledPreviewProviders'] == ['OC\\Preview\\PNG', 'OC\\Preview\\JPEG']

    def test_round_trip_is_byte_identical(self):
        text = fixture('nextcloud_written')
        doc = parse_config(text)
        assert render_config(doc.data) == text
        assert render_config(parse_config(render_config(doc.data)).data) == text

    def test_changing_a_scalar_changes_only_its_line(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {'loglevel': 0})
        assert result.changed_keys == ['loglevel']
        assert changed_lines(text, result.text) == (["  'loglevel' => 2,\n"], ["  'loglevel' => 0,\n"])

    def test_changing_a_list_changes_only_its_items(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {'trusted_domains': ['cloud.example.org', '10.0.0.21']})
        assert changed_lines(text, result.text) == (
            ["    0 => 'localhost',\n", "    1 => '10.0.0.22',\n"],
            ["    0 => 'cloud.example.org',\n", "    1 => '10.0.0.21',\n"],
        )

    def test_the_design_notes_sed_case_with_merge(self):
        # sed -i "s/0 => 'masterwebnodeIP'/0 => '10.0.0.21'/" done as data:
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {'trusted_domains': {'1': '10.0.0.21'}}, merge=True)
        assert changed_lines(text, result.text) == (["    1 => '10.0.0.22',\n"], ["    1 => '10.0.0.21',\n"])

    def test_new_keys_are_appended_in_nextcloud_layout(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {'memcache.distributed': '\\OC\\Memcache\\Redis', 'filelocking.enabled': True})
        assert result.text.endswith(
            "  'memcache.distributed' => '\\\\OC\\\\Memcache\\\\Redis',\n"
            "  'filelocking.enabled' => true,\n"
            ");\n")
        assert changed_lines(text, result.text)[0] == []

    def test_removing_keys(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, remove=['redis', 'theme', 'not.there'])
        assert result.changed_keys == ['redis', 'theme']
        removed, added = changed_lines(text, result.text)
        assert added == []
        assert removed == ["  'redis' => \n", "  array (\n", "    'host' => 'redis1',\n", "    'port' => 6379,\n",
                           "    'timeout' => 1.5,\n", "  ),\n", "  'theme' => '',\n"]

    @pytest.mark.parametrize('settings', [
        {'loglevel': 2},
        {'trusted_domains': ['localhost', '10.0.0.22']},
        {'trusted_domains': {0: 'localhost', 1: '10.0.0.22'}},
        {'trusted_domains': {'0': 'localhost', '1': '10.0.0.22'}},  # what JSON module args look like
        {'redis': {'host': 'redis1', 'port': 6379, 'timeout': 1.5}},
        {'twofactor_enforced_groups': []},
        {'twofactor_enforced_groups': {}},
        {'memcache.local': '\\OC\\Memcache\\APCu'},
        {'installed': True, 'maintenance': False, 'twofactor_enforced': 'false'},
    ])
    def test_values_already_in_place_change_nothing(self, settings):
        text = fixture('nextcloud_written')
        doc = parse_config(text)
        result = edit_config(doc, settings)
        assert result.changed_keys == []
        assert result.text is doc.text

    def test_merge_of_values_already_in_place_changes_nothing(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {'redis': {'port': 6379}, 'trusted_domains': {1: '10.0.0.22'}}, merge=True)
        assert result.changed_keys == []
        assert result.text == text

    @pytest.mark.parametrize('settings', [
        {'loglevel': '2'},
        {'loglevel': 2.0},
        {'installed': 1},
        {'twofactor_enforced': False},
        {'redis': {'port': 6379, 'host': 'redis1', 'timeout': 1.5}},  # order is part of a PHP array
        {'trusted_domains': ['10.0.0.22', 'localhost']},
        {'redis': {'host': 'redis1', 'port': 6379}},  # without merge the value is replaced
    ])
    def test_values_compare_strictly(self, settings):
        result = edit_config_text(fixture('nextcloud_written'), settings)
        assert result.changed_keys == list(settings)


class TestMerge:

    TEXT = render_config(to_php({
        'redis': {'host': 'redis1', 'port': 6379, 'options': {'a': 1, 'b': 2}},
        'trusted_domains': ['a', 'b', 'c'],
        'loglevel': 2,
    }))

    def test_adds_and_replaces_keys_recursively(self):
        result = edit_config_text(self.TEXT, {'redis': {'password': 's3cret', 'options': {'b': 3, 'c': 4}}}, merge=True)
        assert to_python(result.data['redis']) == {
            'host': 'redis1', 'port': 6379, 'options': {'a': 1, 'b': 3, 'c': 4}, 'password': 's3cret'}

    def test_lists_replace(self):
        result = edit_config_text(self.TEXT, {'trusted_domains': ['x']}, merge=True)
        assert to_python(result.data['trusted_domains']) == ['x']

    def test_mapping_with_integer_keys_changes_single_items(self):
        result = edit_config_text(self.TEXT, {'trusted_domains': {1: 'B', 3: 'd'}}, merge=True)
        assert to_python(result.data['trusted_domains']) == ['a', 'B', 'c', 'd']

    def test_mapping_over_a_scalar_replaces_it(self):
        result = edit_config_text(self.TEXT, {'loglevel': {'x': 1}}, merge=True)
        assert to_python(result.data['loglevel']) == {'x': 1}

    def test_expression_replaces_an_array(self):
        result = edit_config_text(self.TEXT, {'redis': {'__php_expr__': "getenv('REDIS')"}}, merge=True)
        assert result.data['redis'] == PhpExpr("getenv('REDIS')")

    def test_without_merge_replaces(self):
        result = edit_config_text(self.TEXT, {'redis': {'host': 'other'}})
        assert to_python(result.data['redis']) == {'host': 'other'}


# ---------------------------------------------------------------------------
# Hand-edited files without comments
# ---------------------------------------------------------------------------

class TestHandEdited:

    def test_parses(self):
        doc = parse_config(fixture('hand_edited'))
        assert doc.lossless
        assert to_python(doc.data) == {
            'instanceid': 'oc1a2b3c4d5e',
            'trusted_domains': ['localhost', 'cloud.example.org'],
            'datadirectory': '/srv/ncdata',
            'dbtype': 'pgsql',
            'installed': True,
            'debug': False,
            'maintenance': None,
            'memcache.local': '\\OC\\Memcache\\APCu',
            'redis': {'host': 'redis1', 'port': 6379, 'dbindex': 0},
            'loglevel': -1,
            'preview_max_x': 2048.0,
            'log_rotate_size': 104857600,
        }

    def test_nothing_to_change_keeps_the_hand_layout(self):
        text = fixture('hand_edited')
        result = edit_config_text(text, {'installed': True, 'trusted_domains': ['localhost', 'cloud.example.org']})
        assert result.text == text

    def test_a_change_writes_nextcloud_layout(self):
        text = fixture('hand_edited')
        result = edit_config_text(text, {'debug': True})
        assert result.text == render_config(result.data)
        assert result.text.startswith("<?php\n$CONFIG = array (\n  'instanceid' => 'oc1a2b3c4d5e',\n")
        assert "  'debug' => true,\n" in result.text
        assert "  'preview_max_x' => 2048.0,\n" in result.text


# ---------------------------------------------------------------------------
# Files with comments
# ---------------------------------------------------------------------------

class TestWithComments:

    def test_parses(self):
        doc = parse_config(fixture('with_comments'))
        assert not doc.lossless
        assert to_python(doc.data)['trusted_domains'] == ['cloud.example.org', 'masterwebnodeIP']
        assert to_python(doc.data)['loglevel'] == 2

    def test_change_keeps_comments_and_other_entries(self):
        text = fixture('with_comments')
        result = edit_config_text(text, {'dbhost': 'pgbouncer2:6432'})
        assert changed_lines(text, result.text) == (
            ["  'dbhost' => 'pgbouncer:6432',\n"], ["  'dbhost' => 'pgbouncer2:6432',\n"])

    def test_changed_entry_keeps_its_comments(self):
        text = fixture('with_comments')
        result = edit_config_text(text, {'datadirectory': '/mnt/ncdata', 'trusted_domains': {1: '10.0.0.21'}}, merge=True)
        assert "  'datadirectory' => '/mnt/ncdata', // shared storage\n" in result.text
        assert ("  // Both names of this node; web2 has its own address at 1.\n"
                "  'trusted_domains' => \n"
                "  array (\n"
                "    0 => 'cloud.example.org',\n"
                "    1 => '10.0.0.21',\n"
                "  ),\n"
                "  'datadirectory'") in result.text
        assert result.text.startswith("<?php\n/**\n * Hand-maintained configuration of node web1.\n */\n")

    def test_removal_takes_the_comment_above(self):
        text = fixture('with_comments')
        result = edit_config_text(text, remove=['memcache.local'])
        removed, added = changed_lines(text, result.text)
        assert removed == ["  # local cache\n", "  'memcache.local' => '\\OC\\Memcache\\APCu',\n"]
        assert added == []

    def test_last_entry_without_comma(self):
        text = fixture('with_comments')
        result = edit_config_text(text, {'loglevel': 1})
        assert result.text.endswith("  'loglevel' => 1, /* warnings */\n);\n")
        result = edit_config_text(text, {'debug': False})
        assert result.text.endswith("  'loglevel' => 2, /* warnings */\n  'debug' => false,\n);\n")

    def test_all_entries_removed(self):
        text = fixture('with_comments')
        keys = list(parse_config(text).data)
        result = edit_config_text(text, remove=keys)
        assert result.data == {}
        assert parse_config(result.text).data == {}

    def test_single_line_and_empty_arrays(self):
        result = edit_config_text("<?php $CONFIG = ['a' => 1]; // one line\n", {'b': 2})
        assert result.text == "<?php $CONFIG = ['a' => 1,\n  'b' => 2,\n]; // one line\n"
        result = edit_config_text("<?php\n// empty\n$CONFIG = array();\n", {'b': [1]})
        assert result.text == "<?php\n// empty\n$CONFIG = array(\n  'b' => \n  array (\n    0 => 1,\n  ),\n);\n"

    def test_duplicate_keys(self):
        text = "<?php\n$CONFIG = array (\n  'a' => 1,\n  'b' => 2, // dup\n  'a' => 3,\n);\n"
        doc = parse_config(text)
        assert doc.data == {'a': 3, 'b': 2}
        assert list(doc.data) == ['a', 'b']
        assert doc.duplicate_keys == {'a': 2}
        assert edit_config(doc, {'a': 3}).text == text
        assert edit_config(doc, {'a': 4}).text == "<?php\n$CONFIG = array (\n  'a' => 4,\n  'b' => 2, // dup\n);\n"

    def test_crlf_file(self):
        text = fixture('with_comments').replace('\n', '\r\n')
        result = edit_config_text(text, {'dbtype': 'mysql'})
        assert "  'dbtype' => 'mysql',\r\n" in result.text
        assert to_python(parse_config(result.text).data)['dbtype'] == 'mysql'


# ---------------------------------------------------------------------------
# Expressions the parser does not evaluate
# ---------------------------------------------------------------------------

class TestExpressions:

    def test_parses_expressions_verbatim(self):
        doc = parse_config(fixture('with_expressions'))
        data = doc.data
        assert not doc.lossless
        assert data['dbpassword'] == PhpExpr("getenv('NC_TEST_ENV')")
        assert data['session_lifetime'] == PhpExpr('60 * 60 * 24')
        assert data['logfilemode'] == 0o640
        assert data['redis.cluster']['failover_mode'] == PhpExpr('\\RedisCluster::FAILOVER_ERROR')
        assert list(data['dbdriveroptions']) == [PhpExpr('PDO::ATTR_TIMEOUT'), PhpExpr('\\PDO::ATTR_PERSISTENT')]
        assert data['greeting'] == PhpExpr('"Hello {$nc_test_name}"')
        assert data['datadirectory'] == '/srv/ncdata'

    def test_untouched_expressions_and_numbers_are_kept(self):
        text = fixture('with_expressions')
        result = edit_config_text(text, {'memcache.local': '\\OC\\Memcache\\Redis'})
        assert changed_lines(text, result.text) == (
            ["  'memcache.local' => '\\OC\\Memcache\\APCu',\n"],
            ["  'memcache.local' => '\\\\OC\\\\Memcache\\\\Redis',\n"])
        assert result.text.endswith(');\n?>\n')

    def test_changed_array_keeps_nested_expressions(self):
        text = fixture('with_expressions')
        result = edit_config_text(text, {'redis.cluster': {'timeout': 1.5}}, merge=True)
        assert ("  'redis.cluster' => \n  array (\n    'seeds' => \n    array (\n      0 => 'redis1:7000',\n"
                "      1 => 'redis2:7000',\n    ),\n    'timeout' => 1.5,\n"
                "    'failover_mode' => \\RedisCluster::FAILOVER_ERROR,\n  ),\n") in result.text
        result = edit_config_text(text, {'dbdriveroptions': {'x': 1}}, merge=True)
        assert "    PDO::ATTR_TIMEOUT => 5,\n    \\PDO::ATTR_PERSISTENT => true,\n    'x' => 1,\n" in result.text

    @pytest.mark.parametrize('settings', [
        {'dbpassword': {'__php_expr__': "getenv('NC_TEST_ENV')"}},
        {'dbpassword': {'__php_expr__': "  getenv('NC_TEST_ENV')\n"}},
        {'session_lifetime': {'__php_expr__': '60 * 60 * 24'}},
        {'logfilemode': 0o640},
        {'logfilemode': {'__php_expr__': '0640'}},
        {'redis.cluster': {'failover_mode': {'__php_expr__': '\\RedisCluster::FAILOVER_ERROR'}}},
    ])
    def test_setting_the_same_expression_changes_nothing(self, settings):
        text = fixture('with_expressions')
        result = edit_config_text(text, settings, merge=True)
        assert result.changed_keys == []
        assert result.text == text

    def test_setting_an_expression(self):
        text = fixture('nextcloud_written')
        result = edit_config_text(text, {
            'dbpassword': {'__php_expr__': "getenv('NC_DB_PASSWORD') ?: 'fallback'"},
            'redis.cluster': {'seeds': ['r1:7000'], 'failover_mode': {'__php_expr__': '\\RedisCluster::FAILOVER_ERROR'}},
        })
        assert "  'dbpassword' => getenv('NC_DB_PASSWORD') ?: 'fallback',\n" in result.text
        assert "    'failover_mode' => \\RedisCluster::FAILOVER_ERROR,\n" in result.text
        assert result.data['dbpassword'] == PhpExpr("getenv('NC_DB_PASSWORD') ?: 'fallback'")

    def test_array_with_expression_keys(self):
        settings = {'dbdriveroptions': {'__php_expr__': "[PDO::MYSQL_ATTR_SSL_CA => '/etc/ssl/ca.pem', PDO::ATTR_TIMEOUT => 5]"}}
        first = edit_config_text(fixture('nextcloud_written'), settings)
        assert ("  'dbdriveroptions' => \n  array (\n    PDO::MYSQL_ATTR_SSL_CA => '/etc/ssl/ca.pem',\n"
                "    PDO::ATTR_TIMEOUT => 5,\n  ),\n") in first.text
        second = edit_config_text(first.text, settings)
        assert second.changed_keys == []

    def test_expression_that_is_a_literal_becomes_the_value(self):
        assert parse_expression("'abc'") == 'abc'
        assert parse_expression('"a\\tb"') == 'a\tb'
        assert parse_expression('[1, 2]') == {0: 1, 1: 2}
        assert parse_expression("array('a' => PHP_INT_SIZE)") == {'a': PhpExpr('PHP_INT_SIZE')}
        result = edit_config_text(fixture('nextcloud_written'), {'loglevel': {'__php_expr__': '2'}})
        assert result.changed_keys == []

    @pytest.mark.parametrize('source, expected', [
        ('1 + 2', PhpExpr('1 + 2')),
        ('-9223372036854775807-1', INT_MIN),
        ('-9223372036854775807 - 2', PhpExpr('-9223372036854775807 - 2')),
        ('foo(1, [2, 3])', PhpExpr('foo(1, [2, 3])')),
        ('"$x"', PhpExpr('"$x"')),
        ('"\\$x"', '$x'),
        ("'a' . 'b'", 'ab'),
        ("'a' . $b", PhpExpr("'a' . $b")),
        ('(int) "5"', PhpExpr('(int) "5"')),
        ('TRUE', True),
        ('\\true', PhpExpr('\\true')),
        ('inf', PhpExpr('inf')),
        ('-INF', float('-inf')),
        ('PHP_EOL', PhpExpr('PHP_EOL')),
        ('`id`', PhpExpr('`id`')),
    ])
    def test_parse_expression(self, source, expected):
        value = parse_expression(source)
        assert type(value) is type(expected)
        assert value == expected

    @pytest.mark.parametrize('source, message', [
        ('', 'is empty'),
        ('   ', 'is empty'),
        ('a, b', 'not a single PHP expression'),
        ("'a' => 'b'", 'not a single PHP expression'),
        ('foo(', 'not a single PHP expression'),
        ('foo)', 'not a single PHP expression'),
        ('1; system("id")', 'not a single PHP expression'),
        ("'unterminated", 'not a single PHP expression'),
        ("getenv('X') // comment", 'must not contain comments'),
        ('1 /* c */', 'must not contain comments'),
        ('<<<EOT\nx\nEOT', 'heredoc'),
        ('1 ?> <?php 2', "'?>'"),
        (5, 'must be a string of PHP code'),
    ])
    def test_bad_expressions(self, source, message):
        with pytest.raises(PhpValueError, match=message):
            to_php({'__php_expr__': source})

    def test_expression_marker_must_stand_alone(self):
        with pytest.raises(PhpValueError, match='no other keys'):
            to_php({'__php_expr__': 'X', 'other': 1})


# ---------------------------------------------------------------------------
# Writer details (var_export layout)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('value, source', [
    ('plain', "'plain'"),
    ("it's", "'it\\'s'"),
    ('back\\slash', "'back\\\\slash'"),
    ('\\OC\\Memcache\\APCu', "'\\\\OC\\\\Memcache\\\\APCu'"),
    ('new\nline', "'new\nline'"),
    ('nul\0byte', '\'nul\' . "\\0" . \'byte\''),
    ('\0', '\'\' . "\\0" . \'\''),
    ('ünïcödé 😀', "'ünïcödé 😀'"),
    ('', "''"),
    (0, '0'),
    (-1, '-1'),
    (2 ** 63 - 1, '9223372036854775807'),
    (-2 ** 63, '-9223372036854775807-1'),
    (1.5, '1.5'),
    (1.0, '1.0'),
    (0.1, '0.1'),
    (-0.0, '-0.0'),
    (1e15, '1000000000000000.0'),
    (1e22, '1.0E+22'),
    (1.5e-7, '1.5E-7'),
    (0.0001, '0.0001'),
    (0.00001, '1.0E-5'),
    (0.1 + 0.2, '0.30000000000000004'),
    (float('inf'), 'INF'),
    (float('-inf'), '-INF'),
    (float('nan'), 'NAN'),
    (True, 'true'),
    (False, 'false'),
    (None, 'NULL'),
    ([], 'array (\n)'),
    ({}, 'array (\n)'),
    (['a', 'b'], "array (\n  0 => 'a',\n  1 => 'b',\n)"),
    ({'x': [], 'y': [[]]}, "array (\n  'x' => \n  array (\n  ),\n  'y' => \n  array (\n    0 => \n    array (\n    ),\n  ),\n)"),
    ({'5': 'a', '05': 'b', '-0': 'c', '-7': 'd', '1.5': 'e', True: 'f', None: 'g'},
     "array (\n  5 => 'a',\n  '05' => 'b',\n  '-0' => 'c',\n  -7 => 'd',\n  '1.5' => 'e',\n  1 => 'f',\n  '' => 'g',\n)"),
    ({"k'\0": 1}, "array (\n  'k\\'' . \"\\0\" . '' => 1,\n)"),
    ({'__php_expr__': 'X::Y'}, 'X::Y'),
])
def test_php_value(value, source):
    assert php_value(value) == source
    parsed = parse_expression(source)
    assert same_value(parsed, to_php(value))


def test_php_value_level():
    assert php_value({'a': [1]}, 1) == "array (\n    'a' => \n    array (\n      0 => 1,\n    ),\n  )"


def test_empty_config():
    assert render_config({}) == EMPTY_CONFIG
    assert parse_config(EMPTY_CONFIG).data == {}


def test_invalid_utf8_survives_a_round_trip():
    raw = b"<?php\n$CONFIG = array (\n  'latin1' => '\xe9t\xe9',\n  'x' => 1,\n);\n"
    doc = parse_config(decode(raw))
    result = edit_config(doc, {'x': 2})
    assert encode(result.text) == raw.replace(b"'x' => 1", b"'x' => 2")


# ---------------------------------------------------------------------------
# Parser details
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('source, expected', [
    ("'single \\' \\\\ \\n'", "single ' \\ \\n"),
    ('"double \\" \\\\ \\n \\t \\x41 \\101 \\u{e9} \\$ \\d \\u00e9"', 'double " \\ \n \t A A \u00e9 $ \\d \\u00e9'),
    ('"\\xC3\\xA9"', '\u00e9'),
    ('"\\xff"', '\udcff'),
    ('\'a\' . "\\0" . \'b\'', 'a\0b'),
    ('true', True), ('TRUE', True), ('True', True), ('false', False), ('FALSE', False),
    ('null', None), ('NULL', None), ('Null', None),
    ('42', 42), ('-42', -42), ('+42', 42), ('- 42', -42), ('0x2A', 42), ('0X2a', 42), ('052', 42), ('0o52', 42),
    ('0b101010', 42), ('4_2', 42), ('0', 0), ('-0', 0),
    ('1.5', 1.5), ('.5', 0.5), ('1.', 1.0), ('1e3', 1000.0), ('1E-3', 0.001), ('1_0.5', 10.5), ('-0.0', -0.0),
    ('9223372036854775807', 2 ** 63 - 1),
    ('9223372036854775808', 9223372036854775808.0),
    ('-9223372036854775808', -9223372036854775808.0),
    ('-9223372036854775807-1', -2 ** 63),
    ('INF', float('inf')), ('-INF', float('-inf')),
    ('array()', {}), ('array ( )', {}), ('ARRAY(1,)', {0: 1}), ('[]', {}), ('[1, 2, 3]', {0: 1, 1: 2, 2: 3}),
    ("['a', 5 => 'b', 'c', '7' => 'd', 'e']", {0: 'a', 5: 'b', 6: 'c', 7: 'd', 8: 'e'}),
    ("[true => 'a', null => 'b', 1.7 => 'c', '08' => 'd']", {1: 'c', '': 'b', '08': 'd'}),
    ("[/* c */ 'a' /* c */ => /* c */ 1 /* c */, # c\n 'b' => 2 // c\n]", {'a': 1, 'b': 2}),
])
def test_parse_literals(source, expected):
    value = parse_expression(source) if '/*' not in source and '#' not in source and '//' not in source else \
        parse_config('<?php $CONFIG = ' + source + ';').data
    assert type(value) is type(expected)
    if isinstance(expected, float) and expected == 0:
        assert str(value) == str(expected)
    assert value == expected


@pytest.mark.parametrize('text, message, line, column', [
    ('', "does not start with '<?php'", 1, 1),
    ('trusted_domains:\n  - cloud.example.org\n', "does not start with '<?php'", 1, 1),
    ('  <?php $CONFIG = [];', "does not start with '<?php'", 1, 1),
    ('\ufeff<?php $CONFIG = [];', 'byte order mark', 1, 1),
    ('<?php\necho "hello";\n', "expected '$CONFIG = array ('", 2, 1),
    ('<?php\n$CONFIGURATION = [];\n', "expected '$CONFIG = array ('", 2, 1),
    ('<?php\n$CONFIG == [];\n', "expected '=' after '$CONFIG'", 2, 9),
    ('<?php\n$CONFIG = "x";\n', "expected an array", 2, 11),
    ('<?php\n$CONFIG = array (\n', 'unexpected end of file', 3, 1),
    ('<?php\n$CONFIG = array (\n  \'a\' => 1\n', 'unexpected end of file', 3, 10),
    ("<?php\n$CONFIG = array (\n  'a' => 'b,\n);\n", 'unterminated single-quoted string', 3, 10),
    ('<?php\n$CONFIG = array (\n  \'a\' => "b,\n);\n', 'unterminated double-quoted string', 3, 10),
    ("<?php\n$CONFIG = array (\n  'a => 1,\n);\n", 'unterminated single-quoted string', 3, 3),
    ("<?php\n$CONFIG = array (\n  'a' => 1 /* ,\n);\n", 'unterminated comment', 3, 12),
    ("<?php\n$CONFIG = array (\n  'a' => 08,\n);\n", 'invalid numeric literal', 3, 10),
    ("<?php\n$CONFIG = array (\n  'a' => 1 'b' => 2,\n);\n", "unexpected '=>'; is a ',' missing", 3, 16),
    ("<?php\n$CONFIG = array (\n  'a' => 1;\n);\n", "expected ',' or ')'", 3, 11),
    ("<?php\n$CONFIG = array (\n  'a' => ,\n);\n", 'expected a value after =>', 3, 10),
    ("<?php\n$CONFIG = array (\n  'a' => 1,\n]);\n", "unexpected ']'", 4, 1),
    ("<?php\n$CONFIG = array (\n  [1] => 1,\n);\n", 'array cannot be used as an array key', 3, 3),
    ("<?php\n$CONFIG = array (\n  'a' => 1,\n)\n", "expected ';'", 5, 1),
    ("<?php\n$CONFIG = array (\n  'a' => 1,\n);\n$CONFIG['b'] = 2;\n", 'unexpected content after the $CONFIG array', 5, 1),
    ("<?php\n$CONFIG = array (\n  'a' => 1,\n);\n?>\n<html>\n", "unexpected content after '?>'", 5, 1),
    ("<?php\n$CONFIG = array (\n  'a' => <<<EOT\nx\nEOT,\n);\n", 'heredoc', 3, 10),
])
def test_parse_errors(text, message, line, column):
    with pytest.raises(PhpParseError, match=re.escape(message)) as info:
        parse_config(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith('line %d, column %d: ' % (line, column))


def test_closing_tag_and_comments_after():
    text = "<?php\n$CONFIG = array (\n  'a' => 1,\n); // end\n?>\n"
    doc = parse_config(text)
    assert doc.data == {'a': 1}
    assert not doc.lossless
    assert edit_config(doc, {'a': 2}).text == text.replace("'a' => 1", "'a' => 2")


# ---------------------------------------------------------------------------
# Input values
# ---------------------------------------------------------------------------

class _Thing(object):
    pass


@pytest.mark.parametrize('value, message', [
    ({1, 2}, 'a value of type set cannot be written'),
    (b'bytes', 'a value of type bytes cannot be written'),
    (_Thing(), 'a value of type _Thing cannot be written'),
    (2 ** 63, 'out of the 64-bit range'),
    (-2 ** 63 - 1, 'out of the 64-bit range'),
    ({'nested': [1, {'deep': object()}]}, r'value.nested\[1\].deep: a value of type object cannot be written'),
    ({(1, 2): 'x'}, 'a tuple cannot be used as an array key'),
    ({2 ** 64: 'x'}, 'integer key .* is out of the 64-bit range'),
])
def test_values_that_cannot_be_written(value, message):
    with pytest.raises(PhpValueError, match=message):
        to_php(value)


def test_edit_rejects_bad_values_and_conflicts():
    text = fixture('nextcloud_written')
    with pytest.raises(PhpValueError, match='redis.port: a value of type set'):
        edit_config_text(text, {'redis': {'port': {6379}}})
    with pytest.raises(PhpValueError, match="key 'debug' is both in settings and in remove"):
        edit_config_text(text, {'debug': True}, remove=['debug'])
    with pytest.raises(PhpConfigError):
        edit_config_text(text, {'x': {'__php_expr__': ''}})


def test_tuples_and_subclasses():
    class Text(str):
        pass

    class Number(int):
        pass

    value = to_php({Text('k'): (Text('v'), Number(3), True)})
    assert value == {'k': {0: 'v', 1: 3, 2: True}}
    assert type(list(value)[0]) is str
    assert type(value['k'][0]) is str and type(value['k'][1]) is int


# ---------------------------------------------------------------------------
# Key warnings
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('key, expected', [
    ('memcache.disributed', "config key 'memcache.disributed' is not a known Nextcloud config key; did you mean 'memcache.distributed'?"),
    ('trusted_domain', "did you mean 'trusted_domains'?"),
    ('memcache.lockng', "did you mean 'memcache.locking'?"),
    ('overwriteprotocoll', "did you mean 'overwriteprotocol'?"),
    ('something_else_entirely', "config key 'something_else_entirely' is not a known Nextcloud config key (typo, or a setting of an app?)"),
    ('memcache.distributed', None),
    ('trusted_domains', None),
    ('filelocking.enabled', None),
    ('twofactor_enforced', None),
    ('dbport', None),
    ('onlyoffice', None),
    ('oidc_login_provider_url', None),
    ('memories.exiftool', None),
])
def test_key_warning(key, expected):
    message = key_warning(key)
    if expected is None:
        assert message is None
    else:
        assert expected in message


def test_edit_warns_about_unknown_keys_in_settings_and_remove():
    result = edit_config_text(fixture('nextcloud_written'), {'memcache.disributed': '\\OC\\Memcache\\Redis'}, remove=['loglevl'])
    assert result.warnings == [
        "config key 'memcache.disributed' is not a known Nextcloud config key; did you mean 'memcache.distributed'?",
        "config key 'loglevl' is not a known Nextcloud config key; did you mean 'loglevel'?",
    ]


def test_export_value_rejects_unnormalized_values():
    with pytest.raises(PhpValueError, match='internal error'):
        export_value([1])
