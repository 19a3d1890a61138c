# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PHP as the oracle.

Every file written here is loaded by the real php-cli: what PHP sees
(json_encode($CONFIG)) must be what we meant to write, and for plain values
our bytes must be exactly what PHP's var_export() (Nextcloud's writer)
produces for the same data. Skipped only when php is not installed.
"""

import math
import os
import random
import struct

import pytest
from hypothesis import given, strategies as st

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import (
    PhpExpr,
    decode,
    edit_config_text,
    encode,
    export_value,
    parse_config,
    php_key,
    render_config,
    same_value,
    to_php,
)

from php_helpers import json_like, needs_php, php_edit, php_load_text, php_load_texts, strict_equal
from php_strategies import ORACLE, any_floats, config_keys, configs, trees_with_expressions

pytestmark = needs_php

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name + '.config.php'), 'rb') as handle:
        return decode(handle.read())


def contains(value, predicate):
    if isinstance(value, dict):
        return any(contains(item, predicate) for item in value.values())
    return predicate(value)


def assignments(settings, data):
    """(key, PHP source) pairs that give PHP the values we meant to write."""
    return [(php_key(key), export_value(data[php_key(key)])) for key in settings]


@pytest.mark.parametrize('name', ['nextcloud_written', 'hand_edited', 'with_comments'])
def test_fixtures_read_like_php_reads_them(name):
    text = fixture(name)
    seen, exported = php_load_text(text)
    doc = parse_config(text)
    assert strict_equal(json_like(doc.data), seen)
    assert encode(render_config(doc.data)) == exported


EDITS = [
    ({'loglevel': 0}, [], False),
    ({'trusted_domains': ['cloud.example.org', '10.0.0.21']}, [], False),
    ({'trusted_domains': {1: '10.0.0.21'}}, [], True),
    ({'redis': {'password': "p'w\\d", 'timeout': 0.5}}, ['instanceid'], True),
    ({'memcache.distributed': '\\OC\\Memcache\\Redis', 'new.list': [], 'f': 1.0, 'n': None, 'neg': -3}, ['datadirectory'], False),
    ({'dbpassword': {'__php_expr__': "getenv('NC_TEST_ENV')"}}, [], False),
]


@pytest.mark.parametrize('name', ['nextcloud_written', 'hand_edited', 'with_comments', 'with_expressions'])
@pytest.mark.parametrize('settings, remove, merge', EDITS)
def test_edits_load_in_php_as_php_itself_would_have_edited(name, settings, remove, merge):
    text = fixture(name)
    result = edit_config_text(text, settings, remove, merge)
    ours, ours_exported = php_load_text(result.text)
    native = php_edit(text, assignments(settings, result.data), [php_key(key) for key in remove])
    theirs, theirs_exported = php_load_text(native)
    assert strict_equal(ours, theirs)
    assert ours_exported == theirs_exported
    if parse_config(text).lossless and not contains(result.data, lambda item: isinstance(item, PhpExpr)):
        # No comments and no expressions: byte-identical to what Nextcloud would write.
        assert encode(result.text) == native


@ORACLE
@given(configs(any_floats))
def test_written_files_are_exactly_var_export(config):
    data = to_php(config)
    text = render_config(data)
    seen, exported = php_load_text(text)
    assert encode(text) == exported
    if not contains(data, lambda item: isinstance(item, float) and (math.isinf(item) or math.isnan(item))):
        # json_encode() cannot represent INF and NAN
        assert strict_equal(json_like(data), seen)


@ORACLE
@given(configs(), configs(max_size=3), st.lists(config_keys, max_size=2), st.booleans())
def test_random_edits_match_the_php_one_liner(base, settings, remove, merge):
    remove = [key for key in remove if php_key(key) not in set(php_key(k) for k in settings)]
    text = render_config(to_php(base))
    result = edit_config_text(text, settings, remove, merge)
    native = php_edit(text, assignments(settings, result.data), [php_key(key) for key in remove])
    assert encode(result.text) == native


@ORACLE
@given(st.dictionaries(config_keys, trees_with_expressions(), max_size=4))
def test_expressions_are_evaluated_by_php_as_written(config):
    data = to_php(config)
    text = render_config(data)
    seen, _exported = php_load_text(text)
    # PHP evaluates each expression itself; assigning the same PHP source gives the same array.
    native = php_edit('<?php\n$CONFIG = array (\n);\n', [(key, export_value(value)) for key, value in data.items()])
    assert strict_equal(seen, php_load_text(native)[0])


def test_floats_and_ints_in_bulk():
    rng = random.Random(20251125)
    values = []
    for _index in range(4000):
        values.append(struct.unpack('<d', struct.pack('<Q', rng.getrandbits(64)))[0])
        values.append(rng.uniform(-1e6, 1e6))
        values.append(10 ** rng.uniform(-30, 30))
        values.append(rng.randint(-2 ** 63, 2 ** 63 - 1))
    data = to_php(values + [float('inf'), float('-inf'), float('nan'), -0.0, 2 ** 63 - 1, -2 ** 63])
    text = render_config({'values': data})
    assert encode(text) == php_load_text(text)[1]


def test_bytes_and_escapes():
    rng = random.Random(3)
    lines = []
    for index in range(300):
        raw = bytes(bytearray(rng.randrange(256) for _byte in range(rng.randrange(12))))
        lines.append('  %d => "%s",' % (index, ''.join('\\x%02x' % byte for byte in bytearray(raw))))
    lines.append('''  'escapes' => "\\n\\t\\r\\v\\e\\f\\\\\\$\\"\\101\\x41\\u{1F600}\\u{e9} \\d \\u00e9 \\x \\7 \\08",''')
    lines.append("""  'single' => 'a\\'b\\\\c\\d',""")
    lines.append("""  'concat' => 'a' . "\\0" . 'b' . "c$" . '',""")
    text = '<?php\n$CONFIG = [\n' + '\n'.join(lines) + '\n];\n'
    doc = parse_config(text)
    _seen, exported = php_load_text(text)
    assert encode(render_config(doc.data)) == exported
    assert same_value(parse_config(decode(exported)).data, doc.data)


def test_php_int_min_and_large_literals():
    text = ("<?php\n$CONFIG = array (\n  'min' => -9223372036854775807-1,\n  'big' => 9223372036854775808,\n"
            "  'hex' => 0x7FFFFFFFFFFFFFFF,\n  'oct' => 0777,\n  -9223372036854775808 => 'k',\n);\n")
    doc = parse_config(text)
    seen, exported = php_load_texts([text])[0]
    assert strict_equal(json_like(doc.data), seen)
    assert encode(render_config(doc.data)) == exported
