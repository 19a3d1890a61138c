# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based tests: whatever is written reads back as the same value, and writing is stable."""

# Exact types matter here (True is not 1, 1.0 is not 1): type() checks are deliberate.
# pylint: disable=unidiomatic-typecheck
from hypothesis import assume, given, strategies as st

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.php_config import (
    decode,
    edit_config,
    edit_config_text,
    encode,
    export_entry,
    export_value,
    parse_config,
    parse_expression,
    php_key,
    render_config,
    same_value,
    to_php,
)

from php_strategies import FAST, any_floats, config_keys, configs, trees, trees_with_expressions


@FAST
@given(configs(any_floats))
def test_written_config_reads_back_equal_and_writes_the_same_bytes(config):
    data = to_php(config)
    text = render_config(data)
    doc = parse_config(text)
    assert doc.lossless
    assert same_value(doc.data, data)
    again = render_config(doc.data)
    assert again == text
    assert decode(encode(text)) == text


@FAST
@given(trees(any_floats))
def test_any_value_reads_back_equal(value):
    data = to_php(value)
    for level in (0, 1, 3):
        source = export_value(data, level)
        assert same_value(parse_expression(source), data)


@FAST
@given(st.dictionaries(config_keys, trees_with_expressions(), max_size=5))
def test_expressions_read_back_verbatim(config):
    data = to_php(config)
    text = render_config(data)
    doc = parse_config(text)
    assert same_value(doc.data, data)
    assert render_config(doc.data) == text


def _one_php_key_each(value):
    """No mapping holds two keys PHP takes for one ('0' and 0): a PHP array cannot, so no config.php setting can."""
    if isinstance(value, dict):
        keys = [php_key(key) for key in value]
        return len(keys) == len(set(keys)) and all(_one_php_key_each(item) for item in value.values())
    if isinstance(value, list):
        return all(_one_php_key_each(item) for item in value)
    return True


@FAST
@given(configs(), configs(max_size=4), st.lists(config_keys, max_size=3), st.booleans())
def test_edits_are_idempotent(base, settings, remove, merge):
    assume(_one_php_key_each(base) and _one_php_key_each(settings))
    remove = [key for key in remove if php_key(key) not in set(php_key(k) for k in settings)]
    first = edit_config_text(render_config(to_php(base)), settings, remove, merge)
    second = edit_config(parse_config(first.text), settings, remove, merge)
    assert second.changed_keys == []
    assert second.text == first.text


def expected_after(base, settings, remove, merge):
    """The array PHP would hold after $CONFIG[k] = v and unset($CONFIG[k]), computed independently."""
    data = dict(to_php(base))
    for key, value in settings.items():
        key = php_key(key)
        if merge and isinstance(value, dict) and '__php_expr__' not in value and type(data.get(key)) is dict:
            data[key] = _merge(data[key], value)
        else:
            data[key] = to_php(value)
    for key in remove:
        data.pop(php_key(key), None)
    return data


def _merge(old, new):
    result = dict(old)
    for key, value in new.items():
        key = php_key(key)
        if isinstance(value, dict) and type(result.get(key)) is dict:
            result[key] = _merge(result[key], value)
        else:
            result[key] = to_php(value)
    return result


def with_comments(data):
    """A file with the given data, decorated with comments like a person would."""
    parts = ['<?php\n// managed in part by Ansible\n$CONFIG = array (\n']
    for key, value in data.items():
        parts.append('  # entry\n  ' + export_entry(key, value) + ' // same line\n')
    parts.append(');\n')
    return ''.join(parts)


@FAST
@given(configs(), configs(max_size=4), st.lists(config_keys, max_size=3), st.booleans())
def test_edits_of_commented_files_keep_comments_and_mean_the_same_as_php(base, settings, remove, merge):
    remove = [key for key in remove if php_key(key) not in set(php_key(k) for k in settings)]
    text = with_comments(to_php(base))
    doc = parse_config(text)
    assert same_value(doc.data, to_php(base))
    result = edit_config(doc, settings, remove, merge)
    expected = expected_after(base, settings, remove, merge)
    assert same_value(parse_config(result.text).data, expected)
    assert result.text.startswith('<?php\n// managed in part by Ansible\n')
    untouched = [key for key in doc.data if key not in result.changed_keys]
    for key in untouched:
        if isinstance(key, str) and '\n' not in key:
            assert "# entry\n  %s" % export_value(key) in result.text


@FAST
@given(configs(), configs(max_size=4), st.lists(config_keys, max_size=3))
def test_edits_of_nextcloud_files_are_a_full_var_export(base, settings, remove):
    remove = [key for key in remove if php_key(key) not in set(php_key(k) for k in settings)]
    result = edit_config_text(render_config(to_php(base)), settings, remove)
    assert result.text == render_config(expected_after(base, settings, remove, False))
