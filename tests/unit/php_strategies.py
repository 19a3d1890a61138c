# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis strategies for config.php value trees (as users give them to the module)."""

import os

from hypothesis import HealthCheck, settings, strategies as st

# Scale up for a longer bug hunt, e.g. CONFIG_PHP_EXAMPLES_SCALE=50 pytest tests/unit
_SCALE = float(os.environ.get('CONFIG_PHP_EXAMPLES_SCALE', '1'))

# No deadline: PHP subprocesses and the first parse of a run vary in speed.
FAST = settings(max_examples=int(100 * _SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORACLE = settings(max_examples=int(60 * _SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY_STRINGS = [
    '', "'", '\\', "\\'", "'\\", '\0', 'a\0b', '\0\0', '\n', '\r\n', '\t', '$x', '{$x}', '"', '""',
    'é', '😀', '?>', '<?php', '*/', '/*', '//', '#', ',', '=>', ');', '\\OC\\Memcache\\Redis',
    'array (', 'NULL', 'true', '0', '-1', '1.5', ' ',
]

strings = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=16),
    st.sampled_from(TRICKY_STRINGS),
)
ints = st.one_of(
    st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1),
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 31, 2 ** 53 + 1]),
)
finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 0.1, 1e15, 1e16, 1e17, 1e22, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308]),
)
any_floats = st.one_of(finite_floats, st.sampled_from([float('inf'), float('-inf'), float('nan')]))
keys = st.one_of(
    strings,
    st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1),
    st.integers(min_value=0, max_value=5),
    st.sampled_from(['0', '5', '-3', '05', '-0', ' 1', '1.5', '9223372036854775808']),
).filter(lambda key: key != '__php_expr__')  # that key marks an expression, see to_php()
config_keys = st.one_of(
    st.sampled_from(['trusted_domains', 'redis', 'memcache.local', 'loglevel', 'installed', 'dbhost',
                     'overwrite.cli.url', 'maintenance', 'app.x', 'apps_paths']),
    st.text(alphabet='abcdefghijklmnopqrstuvwxyz._-', min_size=1, max_size=12),
).filter(lambda key: key != '__php_expr__')


def trees(floats=finite_floats, max_leaves=12):
    scalars = st.one_of(st.none(), st.booleans(), ints, floats, strings)
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def configs(floats=finite_floats, max_size=6):
    return st.dictionaries(config_keys, trees(floats), max_size=max_size)


expressions = st.sampled_from([
    "getenv('NC_TEST_ENV')",
    '60 * 60 * 24',
    '\\RedisCluster::FAILOVER_ERROR',
    'PHP_INT_SIZE',
    "'a' . PHP_EOL",
    '[1, getenv("NC_TEST_ENV")]',
    "(int) '5'",
])


def trees_with_expressions():
    scalars = st.one_of(st.none(), st.booleans(), ints, finite_floats, strings,
                        expressions.map(lambda code: {'__php_expr__': code}))
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)),
        max_leaves=12,
    )
