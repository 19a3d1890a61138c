# -*- coding: utf-8 -*-
# Copyright: (c) 2025, nextcloud_ha.cluster developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read and write Nextcloud's config.php as data.

The parser understands the subset of PHP that config.php files contain:
``<?php``, one ``$CONFIG = array (...);`` (or ``[...]``) statement, nested
arrays with integer and string keys (explicit or implicit), single- and
double-quoted strings with their escapes, concatenations of string literals
(``var_export()`` writes NUL bytes that way), integers in every PHP notation,
floats, ``INF``/``NAN``, ``true``/``false``/``null`` in any case, trailing
commas and comments.

Anything else that can stand as a value or a key (class constants such as
``\\RedisCluster::FAILOVER_ERROR``, ``getenv('X')``, ``60 * 60 * 24``) is
kept verbatim as a ``PhpExpr`` and written back unchanged.

The writer produces exactly what PHP's ``var_export()`` produces, which is
how Nextcloud writes config.php itself.

Values are represented with plain Python types: ``str``, ``int``, ``float``,
``bool``, ``None``, ``PhpExpr`` and ``dict`` for PHP arrays (keys are ``int``,
``str`` or ``PhpExpr``, in PHP order). ``to_php()`` turns user input
(lists, mappings, the ``{'__php_expr__': '...'}`` marker) into that form.

Everything here is pure: no file system access, no imports beyond the
standard library.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import math
import re

try:
    from collections.abc import Mapping
except ImportError:  # pragma: no cover - Python 2 is not supported, this only keeps linters calm
    Mapping = dict

from ansible_collections.nextcloud_ha.cluster.plugins.module_utils.nextcloud_config_keys import (
    FREEFORM_KEY_PREFIXES,
    KNOWN_CONFIG_KEYS,
)

#: Key of the one-item mapping that marks a raw PHP expression in input values.
EXPR_MARKER = '__php_expr__'

#: What Nextcloud writes for an empty configuration (also the start for ``create``).
EMPTY_CONFIG = "<?php\n$CONFIG = array (\n);\n"

INT_MAX = 2 ** 63 - 1
INT_MIN = -(2 ** 63)

_ENCODING = 'utf-8'
_ERRORS = 'surrogateescape'


class PhpConfigError(ValueError):
    """Base class of all errors raised here."""


class PhpParseError(PhpConfigError):
    """The text is not a config.php this module can read."""

    def __init__(self, msg, text=None, pos=None):
        self.msg = msg
        self.line = self.column = None
        if text is not None and pos is not None:
            self.line = text.count('\n', 0, pos) + 1
            self.column = pos - (text.rfind('\n', 0, pos) + 1) + 1
            full = 'line %d, column %d: %s' % (self.line, self.column, msg)
        else:
            full = msg
        super(PhpParseError, self).__init__(full)


class PhpValueError(PhpConfigError):
    """A value cannot be written to config.php."""


class PhpExpr(object):
    """A PHP expression that is kept as source text and never evaluated."""

    __slots__ = ('code',)

    def __init__(self, code):
        self.code = code

    def __eq__(self, other):
        return isinstance(other, PhpExpr) and other.code == self.code

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((PhpExpr, self.code))

    def __repr__(self):
        return 'PhpExpr(%r)' % (self.code,)


# ---------------------------------------------------------------------------
# Writer (var_export layout)
# ---------------------------------------------------------------------------

def _export_string(value):
    text = value.replace('\\', '\\\\').replace("'", "\\'")
    if '\0' in text:
        # var_export() spells NUL bytes as a concatenation with "\0".
        text = text.replace('\0', '\' . "\\0" . \'')
    return "'" + text + "'"


def _export_int(value):
    if value == INT_MIN:
        # PHP has no literal for PHP_INT_MIN, var_export() writes this expression.
        return '-9223372036854775807-1'
    return str(value)


def _export_float(value):
    """Format a float exactly like PHP's var_export() (serialize_precision -1)."""
    if math.isnan(value):
        return 'NAN'
    if math.isinf(value):
        return 'INF' if value > 0 else '-INF'
    text = repr(value)
    sign = ''
    if text[0] == '-':
        sign, text = '-', text[1:]
    mantissa, _sep, exponent = text.partition('e')
    whole, _sep, fraction = mantissa.partition('.')
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip('0')
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip('0')
    if not digits:
        return sign + '0.0'
    # PHP (zend_gcvt with precision 17): exponential form when the decimal
    # point would be more than 17 digits right or more than 3 zeros left.
    if point > 17 or point < -3:
        exp = point - 1
        return '%s%s.%sE%s%d' % (sign, digits[0], digits[1:] or '0', '+' if exp >= 0 else '-', abs(exp))
    if point <= 0:
        return sign + '0.' + '0' * -point + digits
    if point >= len(digits):
        return sign + digits + '0' * (point - len(digits)) + '.0'
    return sign + digits[:point] + '.' + digits[point:]


def _export_key(key):
    if isinstance(key, str):
        return _export_string(key)
    if isinstance(key, PhpExpr):
        return key.code
    # Unlike values, var_export() writes PHP_INT_MIN as a plain number in keys.
    return '%d' % key


def _export(value, level, out):
    if isinstance(value, str):
        out.append(_export_string(value))
    elif isinstance(value, bool):
        out.append('true' if value else 'false')
    elif isinstance(value, int):
        out.append(_export_int(value))
    elif isinstance(value, float):
        out.append(_export_float(value))
    elif value is None:
        out.append('NULL')
    elif isinstance(value, dict):
        indent = '  ' * (level + 1)
        out.append('array (\n')
        for key, item in value.items():
            out.append(indent)
            out.append(_export_key(key))
            if isinstance(item, dict):
                out.append(' => \n')
                out.append(indent)
                _export(item, level + 1, out)
            else:
                out.append(' => ')
                _export(item, level + 1, out)
            out.append(',\n')
        out.append('  ' * level)
        out.append(')')
    elif isinstance(value, PhpExpr):
        out.append(value.code)
    else:
        raise PhpValueError('internal error: unexpected %s in a normalized value' % type(value).__name__)


def export_value(value, level=0):
    """Render a normalized value (see ``to_php()``) as PHP source, like var_export().

    ``level`` is the nesting level of the value: ``0`` for a value that starts
    at column 0, ``1`` for the value of a top-level config.php entry.
    """
    out = []
    _export(value, level, out)
    return ''.join(out)


def export_entry(key, value):
    """Render one top-level entry ``'key' => value,`` (without indentation and newline)."""
    if isinstance(value, dict):
        return _export_key(key) + ' => \n  ' + export_value(value, 1) + ','
    return _export_key(key) + ' => ' + export_value(value, 1) + ','


def render_config(data):
    """Render a whole config.php for ``data`` exactly as Nextcloud writes it."""
    return '<?php\n$CONFIG = ' + export_value(data, 0) + ';\n'


def same_value(left, right):
    """True when two normalized values are identical PHP values (types, order, keys).

    Types are compared exactly: 1, 1.0, '1' and true differ, 0.0 and -0.0
    differ, NAN equals NAN (as their PHP source would).
    """
    if left is right:
        return True
    if left.__class__ is not right.__class__:
        return False
    if isinstance(left, dict):
        if len(left) != len(right):
            return False
        for (lkey, litem), (rkey, ritem) in zip(left.items(), right.items()):
            if lkey != rkey or lkey.__class__ is not rkey.__class__ or not same_value(litem, ritem):
                return False
        return True
    if isinstance(left, float):
        return _export_float(left) == _export_float(right)
    return left == right


# ---------------------------------------------------------------------------
# Input normalization
# ---------------------------------------------------------------------------

_INT_KEY_RE = re.compile(r'(?:0|-?[1-9][0-9]*)\Z')


def php_key(key, where='key'):
    """Normalize an array key the way PHP does (``'5'`` -> ``5``, ``True`` -> ``1``)."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        key = int(key)
        if not INT_MIN <= key <= INT_MAX:
            raise PhpValueError('%s: integer key %d is out of the 64-bit range of PHP' % (where, key))
        return key
    if isinstance(key, str):
        key = str(key)
        if _INT_KEY_RE.match(key):
            number = int(key)
            if INT_MIN <= number <= INT_MAX:
                return number
        return key
    if key is None:
        return ''
    if isinstance(key, PhpExpr):
        return key
    raise PhpValueError('%s: a %s cannot be used as an array key in config.php' % (where, type(key).__name__))


def to_php(value, where='value'):
    """Turn a Python/Ansible value into the normalized form used by ``export_value()``.

    Lists and tuples become arrays with keys 0..n-1, mappings keep their order
    and get their keys normalized as PHP would. A mapping with the single key
    ``__php_expr__`` stands for raw PHP code (see ``parse_expression()``).
    Raises ``PhpValueError`` for anything that cannot be written.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        value = int(value)
        if not INT_MIN <= value <= INT_MAX:
            raise PhpValueError('%s: integer %d is out of the 64-bit range of PHP; quote it to write a string' % (where, value))
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return '%s' % (value,)
    if isinstance(value, PhpExpr):
        return value
    if isinstance(value, Mapping):
        if EXPR_MARKER in value:
            if len(value) != 1:
                raise PhpValueError('%s: a mapping with %r must have no other keys' % (where, EXPR_MARKER))
            return parse_expression(value[EXPR_MARKER], where)
        result = {}
        for key, item in value.items():
            php = php_key(key, where)
            result[php] = to_php(item, '%s.%s' % (where, key))
        return result
    if isinstance(value, (list, tuple)):
        return dict((index, to_php(item, '%s[%d]' % (where, index))) for index, item in enumerate(value))
    raise PhpValueError('%s: a value of type %s cannot be written to config.php' % (where, type(value).__name__))


def to_python(value):
    """Turn a normalized value into plain Python data (arrays with keys 0..n-1 become lists)."""
    if isinstance(value, dict):
        if all(isinstance(key, int) and key == index for index, key in enumerate(value)):
            return [to_python(item) for item in value.values()]
        return dict((key.code if isinstance(key, PhpExpr) else key, to_python(item)) for key, item in value.items())
    if isinstance(value, PhpExpr):
        return {EXPR_MARKER: value.code}
    return value


def php_value(value, level=0):
    """Render any Python/Ansible value as PHP source (what the ``php_value`` filter does)."""
    return export_value(to_php(value), level)


def merge_values(old, new, where='value'):
    """Merge user input ``new`` into the normalized array ``old`` key by key, recursively.

    Nested mappings are merged into nested arrays; anything else (lists,
    scalars, raw expressions) replaces the old value.
    """
    result = dict(old)
    for key, item in new.items():
        php = php_key(key, where)
        inner = '%s.%s' % (where, key)
        if isinstance(item, Mapping) and EXPR_MARKER not in item and isinstance(result.get(php), dict):
            result[php] = merge_values(result[php], item, inner)
        else:
            result[php] = to_php(item, inner)
    return result


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

_TRIVIA_RE = re.compile(
    r'(?:[ \t\r\n]+'
    r'|(?://|#(?!\[))[^\n?]*(?:\?(?!>)[^\n?]*)*'
    r'|/\*.*?\*/)*',
    re.S,
)
_SPACE_RE = re.compile(r'[ \t\r\n]*')
_SQ_RE = re.compile(r"'((?:[^'\\]|\\.)*)'", re.S)
_DQ_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_BQ_RE = re.compile(r'`((?:[^`\\]|\\.)*)`', re.S)
_SQ_UNESCAPE_RE = re.compile(r"\\([\\'])")
_DQ_INTERPOLATION_RE = re.compile(u'\\\\.|\\$[A-Za-z_\u0080-\U0010ffff{]|\\{\\$', re.S)
_DQ_ESCAPE_RE = re.compile(br'\\(?:([nrtvef\\$"])|([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u\{([0-9A-Fa-f]+)\})')
_DQ_SIMPLE = {b'n': b'\n', b'r': b'\r', b't': b'\t', b'v': b'\x0b', b'e': b'\x1b', b'f': b'\x0c',
              b'\\': b'\\', b'$': b'$', b'"': b'"'}
_NUMBER_RE = re.compile(
    r'(?P<hex>0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)'
    r'|(?P<bin>0[bB][01]+(?:_[01]+)*)'
    r'|(?P<oct>0[oO][0-7]+(?:_[0-7]+)*)'
    r'|(?P<float>(?:(?:[0-9]+(?:_[0-9]+)*)?\.[0-9]+(?:_[0-9]+)*|[0-9]+(?:_[0-9]+)*\.(?![0-9]))(?:[eE][+-]?[0-9]+(?:_[0-9]+)*)?'
    r'|[0-9]+(?:_[0-9]+)*[eE][+-]?[0-9]+(?:_[0-9]+)*)'
    r'|(?P<dec>[0-9]+(?:_[0-9]+)*)'
)
_IDENT_CHAR_RE = re.compile(u'[A-Za-z0-9_\u0080-\U0010ffff]')
_KEYWORD_RE = re.compile(u'(true|false|null|INF|NAN)(?![A-Za-z0-9_\u0080-\U0010ffff\\\\(:])', re.I)
_ARRAY_RE = re.compile(u'array(?![A-Za-z0-9_\u0080-\U0010ffff\\\\])', re.I)
_LINE_END_RE = re.compile(r'[ \t]*(?:(?://|#(?!\[))[^\n]*|/\*[^\n]*?\*/[ \t]*)?\r?\n')
_OPEN_TAG_RE = re.compile(r'<\?php(?=[ \t\r\n]|\Z)', re.I)

_CLOSERS = {'(': ')', '[': ']', '{': '}'}

# Plain entries as var_export() writes them: 'key' => value, (any whitespace, no comments).
_FAST_KEY = r"""[ \t\r\n]*(?:'((?:[^'\\]|\\.)*)'|(-?(?:0|[1-9][0-9]*)))[ \t\r\n]*=>[ \t\r\n]*"""
_FAST_ENTRY_RE = re.compile(
    _FAST_KEY
    + r"""(?:'((?:[^'\\]|\\.)*)'|(-?(?:0|[1-9][0-9]*))|(-?[0-9]+\.[0-9]+(?:E[+-][0-9]+)?)|(true|false|NULL))"""
    + r"""[ \t\r\n]*,""",
    re.S,
)
_FAST_ARRAY_RE = re.compile(_FAST_KEY + r'array \(', re.S)
_WORDS = {'true': True, 'false': False, 'NULL': None}


def _unescape_double(body):
    raw = body.encode(_ENCODING, _ERRORS)

    def replace(match):
        simple, octal, hexa, code = match.groups()
        if simple is not None:
            return _DQ_SIMPLE[simple]
        if octal is not None:
            return bytes(bytearray([int(octal, 8) & 0xFF]))
        if hexa is not None:
            return bytes(bytearray([int(hexa, 16)]))
        point = int(code, 16)
        if point > 0x10FFFF:
            raise ValueError('invalid code point')
        # PHP encodes any code point (even a surrogate) as UTF-8.
        return chr(point).encode(_ENCODING, 'surrogatepass')

    return _DQ_ESCAPE_RE.sub(replace, raw).decode(_ENCODING, _ERRORS)


class _Parser(object):

    def __init__(self, text):
        self.text = text
        self.end = len(text)
        self.pos = 0
        self.has_comment = False
        self.has_expr = False
        self.has_odd_number = False

    def fail(self, msg, pos=None):
        raise PhpParseError(msg, self.text, self.pos if pos is None else pos)

    def skip(self):
        """Skip whitespace and comments."""
        text = self.text
        end = _SPACE_RE.match(text, self.pos).end()
        if end < self.end and text[end] in '/#':
            after = _TRIVIA_RE.match(text, end).end()
            if after != end:
                self.has_comment = True
                end = after
            if text.startswith('/*', end):
                self.pos = end
                self.fail('unterminated comment')
        self.pos = end

    def peek_after_trivia(self):
        """Return the position of the next significant character without consuming anything."""
        saved = self.pos
        self.skip()
        found = self.pos
        self.pos = saved
        return found

    # -- values ------------------------------------------------------------

    def value(self, closer):
        """Parse a key or a value; stops before ``,``, ``=>`` or ``closer``.

        Literals are evaluated; anything else becomes a PhpExpr with its
        source text.
        """
        start = self.pos
        literal, ok = self.literal(closer)
        if ok:
            after = self.peek_after_trivia()
            text = self.text
            if after < self.end and (text[after] in ',' + closer or text.startswith('=>', after)):
                return literal
        self.pos = start
        return self.raw(closer)

    def literal(self, closer):
        """Try to parse a literal at pos; returns (value, True) or (None, False)."""
        text = self.text
        pos = self.pos
        if pos >= self.end:
            self.fail('unexpected end of file; an array is not closed')
        char = text[pos]
        if char == "'" or char == '"':
            return self.strings()
        if char in '-+':
            self.pos += 1
            self.skip()
            number, ok = self.number()
            if not ok:
                match = _KEYWORD_RE.match(text, self.pos)
                if not match or match.group(1) not in ('INF', 'NAN'):
                    return None, False
                self.pos = match.end()
                number = float(match.group(1).lower())
            if char == '-':
                number = -number
                if number == -INT_MAX:
                    # var_export() writes PHP_INT_MIN as -9223372036854775807-1
                    saved = self.pos
                    self.skip()
                    if text.startswith('-', self.pos):
                        self.pos += 1
                        self.skip()
                        one, ok = self.number()
                        if ok and one == 1 and not isinstance(one, float):
                            return INT_MIN, True
                    self.pos = saved
            return number, True
        if char.isdigit() or (char == '.' and text[pos + 1:pos + 2].isdigit()):
            return self.number()
        if char == '[':
            self.pos += 1
            return self.array(']'), True
        match = _ARRAY_RE.match(text, pos)
        if match:
            self.pos = match.end()
            self.skip()
            if text.startswith('(', self.pos):
                self.pos += 1
                return self.array(')'), True
            return None, False
        match = _KEYWORD_RE.match(text, pos)
        if match:
            word = match.group(1)
            lower = word.lower()
            if lower in ('inf', 'nan'):
                if word not in ('INF', 'NAN'):  # constants are case sensitive
                    return None, False
                self.pos = match.end()
                return float(lower), True
            self.pos = match.end()
            return {'true': True, 'false': False, 'null': None}[lower], True
        return None, False

    def number(self):
        text = self.text
        match = _NUMBER_RE.match(text, self.pos)
        if not match:
            return None, False
        end = match.end()
        if end < self.end and _IDENT_CHAR_RE.match(text, end):
            self.fail('invalid numeric literal')
        kind = match.lastgroup
        digits = match.group(kind).replace('_', '')
        if '_' in match.group(kind):
            self.has_odd_number = True
        if kind == 'float':
            value = float(digits)
        else:
            if kind == 'hex':
                value = int(digits[2:], 16)
            elif kind == 'bin':
                value = int(digits[2:], 2)
            elif kind == 'oct':
                value = int(digits[2:], 8)
            elif len(digits) > 1 and digits[0] == '0':
                if not digits.isdigit() or '8' in digits or '9' in digits:
                    self.fail('invalid numeric literal')
                kind = 'oct'
                value = int(digits, 8)
            else:
                value = int(digits)
            if kind != 'dec':
                self.has_odd_number = True
            if value > INT_MAX:
                # PHP turns integer literals that overflow into floats.
                value = float(value) if kind != 'dec' else float(digits)
        self.pos = end
        return value, True

    def strings(self):
        """One string literal, or several joined with '.' (as var_export writes NUL bytes)."""
        value = self.string()
        if value is None:
            return None, False
        text = self.text
        while True:
            saved = self.pos
            self.skip()
            if not text.startswith('.', self.pos) or text.startswith('.=', self.pos):
                self.pos = saved
                return value, True
            self.pos += 1
            self.skip()
            if self.pos >= self.end or text[self.pos] not in '\'"':
                self.pos = saved
                return value, True
            more = self.string()
            if more is None:
                self.pos = saved
                return value, True
            value += more

    def string(self):
        """A single- or double-quoted string at pos; None when it interpolates variables."""
        text = self.text
        start = self.pos
        if text[start] == "'":
            match = _SQ_RE.match(text, start)
            if not match:
                self.fail('unterminated single-quoted string')
            body = match.group(1)
            self.pos = match.end()
            if '\\' in body:
                body = _SQ_UNESCAPE_RE.sub(r'\1', body)
            return body
        match = _DQ_RE.match(text, start)
        if not match:
            self.fail('unterminated double-quoted string')
        body = match.group(1)
        for found in _DQ_INTERPOLATION_RE.finditer(body):
            if found.group(0)[0] != '\\':
                return None  # "$var" or "{$expr}": kept as a raw expression
        self.pos = match.end()
        if '\\' in body:
            try:
                body = _unescape_double(body)
            except ValueError:
                self.fail('invalid escape sequence in double-quoted string', start)
        return body

    def array(self, closer, entries=None):
        """Parse array items after the opening bracket, up to and including ``closer``.

        With ``entries`` (a list), records the source spans of each item for
        editing the top level in place; the last element appended is the
        position where the trivia before the closing bracket starts.
        """
        text = self.text
        result = {}
        next_index = None
        seg_start = self.pos
        while True:
            # Fast path for the var_export layout: one regular expression per plain entry.
            loop_start = self.pos
            match = _FAST_ENTRY_RE.match(text, loop_start)
            if match:
                key = self.fast_key(match)
                if key is not None:
                    core_start = match.start(1) - 1 if match.group(1) is not None else match.start(2)
                    string, integer, number, word = match.group(3, 4, 5, 6)
                    if string is not None:
                        item = _SQ_UNESCAPE_RE.sub(r'\1', string) if '\\' in string else string
                    elif integer is not None:
                        item = int(integer)
                        if not INT_MIN < item <= INT_MAX:
                            item = float(integer)
                    elif number is not None:
                        item = float(number)
                    else:
                        item = _WORDS[word]
                    if isinstance(key, int) and (next_index is None or key >= next_index):
                        next_index = key + 1
                    result[key] = item
                    self.pos = core_end = match.end()
                    if entries is not None:
                        line_end = _LINE_END_RE.match(text, core_end)
                        seg_end = line_end.end() if line_end else core_end
                        entries.append(_Entry(key, seg_start, core_start, core_end, seg_end, True))
                        seg_start = seg_end
                    continue
            match = _FAST_ARRAY_RE.match(text, loop_start)
            if match:
                key = self.fast_key(match)
                if key is not None:
                    core_start = match.start(1) - 1 if match.group(1) is not None else match.start(2)
                    self.pos = match.end()
                    item = self.array(')')
                    after = _SPACE_RE.match(text, self.pos).end()
                    if text.startswith(',', after):
                        if isinstance(key, int) and (next_index is None or key >= next_index):
                            next_index = key + 1
                        result[key] = item
                        self.pos = core_end = after + 1
                        if entries is not None:
                            line_end = _LINE_END_RE.match(text, core_end)
                            seg_end = line_end.end() if line_end else core_end
                            entries.append(_Entry(key, seg_start, core_start, core_end, seg_end, True))
                            seg_start = seg_end
                        continue
                    self.pos = loop_start  # not a plain entry after all: parse it the general way
            self.skip()
            if self.pos >= self.end:
                self.fail('unexpected end of file; an array is not closed')
            if text[self.pos] == closer:
                if entries is not None:
                    entries.append(seg_start)
                self.pos += 1
                return result
            core_start = self.pos
            first = self.value(closer)
            value_end = self.pos
            self.skip()
            if text.startswith('=>', self.pos):
                key = self.key(first, core_start)
                self.pos += 2
                self.skip()
                if self.pos < self.end and (text[self.pos] in ',' + closer or text.startswith('=>', self.pos)):
                    self.fail('expected a value after =>')
                item = self.value(closer)
                value_end = self.pos
                self.skip()
            else:
                # PHP 8.3+ rule for implicit keys: one more than the largest integer key so far.
                key = 0 if next_index is None else next_index
                item = first
            if isinstance(key, int) and (next_index is None or key >= next_index):
                next_index = key + 1
            result[key] = item
            if self.pos >= self.end:
                self.fail('unexpected end of file; an array is not closed')
            char = text[self.pos]
            if char == ',':
                self.pos += 1
                core_end = self.pos
                has_comma = True
            elif char == closer:
                core_end = value_end
                has_comma = False
            elif text.startswith('=>', self.pos):
                self.fail("unexpected '=>'; is a ',' missing before this item?")
            else:
                self.fail("expected ',' or '%s'" % closer)
            if entries is not None:
                match = _LINE_END_RE.match(text, core_end)
                seg_end = match.end() if match else core_end
                entries.append(_Entry(key, seg_start, core_start, core_end, seg_end, has_comma))
                seg_start = seg_end

    def fast_key(self, match):
        """Key of a fast-path match, or None when the general path has to decide."""
        string = match.group(1)
        if string is not None:
            if '\\' in string:
                string = _SQ_UNESCAPE_RE.sub(r'\1', string)
            if _INT_KEY_RE.match(string):
                number = int(string)
                if INT_MIN <= number <= INT_MAX:
                    return number
            return string
        number = int(match.group(2))
        if INT_MIN < number <= INT_MAX:
            return number
        return None

    def key(self, value, pos):
        if isinstance(value, dict):
            self.fail('an array cannot be used as an array key', pos)
        if isinstance(value, float):
            if math.isinf(value) or math.isnan(value):
                self.fail('INF and NAN cannot be used as array keys', pos)
            return int(value)
        try:
            return php_key(value)
        except PhpValueError as exc:
            self.fail(str(exc), pos)

    def raw(self, closer):
        """Scan a PHP expression verbatim up to ``,``, ``=>``, ``;`` or the closing bracket."""
        text = self.text
        start = self.pos
        stack = []
        last = start
        pos = start
        end = self.end
        while True:
            self.pos = pos
            self.skip()
            pos = self.pos
            if pos >= end:
                self.fail('unexpected end of file; an array is not closed', start)
            char = text[pos]
            if not stack and (char == ',' or char == ';' or char == closer or text.startswith('=>', pos)):
                break
            if char in '([{':
                stack.append(_CLOSERS[char])
                pos += 1
            elif char in ')]}':
                if not stack or stack[-1] != char:
                    self.fail("unexpected '%s'" % char)
                stack.pop()
                pos += 1
            elif char in '\'"`':
                match = {"'": _SQ_RE, '"': _DQ_RE, '`': _BQ_RE}[char].match(text, pos)
                if not match:
                    self.fail('unterminated %s string' % {"'": 'single-quoted', '"': 'double-quoted', '`': 'backtick'}[char])
                pos = match.end()
            elif text.startswith('<<<', pos):
                self.fail('heredoc and nowdoc strings are not supported')
            elif text.startswith('?>', pos):
                self.fail("unexpected '?>' inside the configuration array")
            else:
                pos += 1
            last = pos
        if last == start:
            self.fail('expected a value', start)
        self.pos = last
        self.has_expr = True
        return PhpExpr(text[start:last])


class _Entry(object):
    """Source spans of one top-level item: [seg_start [core_start core_end] seg_end]."""

    __slots__ = ('key', 'seg_start', 'core_start', 'core_end', 'seg_end', 'has_comma')

    def __init__(self, key, seg_start, core_start, core_end, seg_end, has_comma):
        self.key = key
        self.seg_start = seg_start
        self.core_start = core_start
        self.core_end = core_end
        self.seg_end = seg_end
        self.has_comma = has_comma


class ConfigDocument(object):
    """A parsed config.php: the data plus what is needed to edit it in place.

    ``data`` is the array PHP would load (later duplicates win, first
    position kept). ``lossless`` is True when rendering ``data`` in
    var_export layout loses nothing but formatting (no comments, no raw
    expressions, no hex/octal/binary numbers, no ``?>``).
    """

    def __init__(self, text, data, entries, header_end, tail_start, lossless):
        self.text = text
        self.data = data
        self.entries = entries
        self.header_end = header_end
        self.tail_start = tail_start
        self.lossless = lossless

    @property
    def duplicate_keys(self):
        """Top-level keys that appear more than once, with their counts."""
        counts = {}
        for entry in self.entries:
            counts[entry.key] = counts.get(entry.key, 0) + 1
        return dict((key, count) for key, count in counts.items() if count > 1)

    def render(self, data, changed):
        """Text of the document holding ``data``; ``changed`` are the top-level keys that differ.

        A lossless document is rendered completely in var_export layout, so a
        file Nextcloud wrote changes only where values changed and the result
        is byte-identical to what Nextcloud (var_export) would write. Otherwise
        untouched entries are kept verbatim with their comments, changed ones
        are rewritten in place and new ones appended before the closing bracket.
        """
        if self.lossless:
            return render_config(data)
        text = self.text
        out = [text[:self.header_end]]
        known = set()
        written = set()
        missing_comma = None
        for entry in self.entries:
            key = entry.key
            known.add(key)
            if key not in data:
                continue
            if key in changed:
                if key in written:
                    continue
                written.add(key)
                out.append(text[entry.seg_start:entry.core_start])
                out.append(export_entry(key, data[key]))
                out.append(text[entry.core_end:entry.seg_end])
            else:
                if not entry.has_comma:
                    missing_comma = len(out)
                    out.append(text[entry.seg_start:entry.core_end])
                    out.append('')
                    out.append(text[entry.core_end:entry.seg_end])
                else:
                    out.append(text[entry.seg_start:entry.seg_end])
        added = [key for key in data if key not in known]
        if added:
            if missing_comma is not None:
                out[missing_comma + 1] = ','
            for key in added:
                if not _ends_with_newline(out):
                    out.append('\n')
                out.append('  ' + export_entry(key, data[key]) + '\n')
        out.append(text[self.tail_start:])
        return ''.join(out)


def _ends_with_newline(parts):
    for part in reversed(parts):
        if part:
            return part.endswith('\n')
    return False


def decode(data):
    """Bytes of a file to text; invalid UTF-8 survives a round trip unchanged."""
    return data.decode(_ENCODING, _ERRORS)


def encode(text):
    """Text to bytes, the inverse of ``decode()``."""
    try:
        return text.encode(_ENCODING, _ERRORS)
    except UnicodeEncodeError as exc:
        raise PhpValueError('a string contains a character that cannot be encoded as UTF-8: %s' % exc)


def parse_config(text):
    """Parse the text of a config.php; raises ``PhpParseError`` with line and column."""
    if not isinstance(text, str):
        raise PhpParseError('expected text, got %s' % type(text).__name__)
    parser = _Parser(text)
    if text.startswith(u'\ufeff'):
        parser.fail('the file starts with a byte order mark; PHP would send it as output. This is not a usable config.php')
    match = _OPEN_TAG_RE.match(text)
    if not match:
        parser.fail("the file does not start with '<?php'; this is not a Nextcloud config.php")
    parser.pos = match.end()
    parser.skip()
    pos = parser.pos
    if not text.startswith('$CONFIG', pos) or _IDENT_CHAR_RE.match(text, pos + 7):
        parser.fail("expected '$CONFIG = array (' after '<?php'; this is not a Nextcloud config.php")
    parser.pos = pos + 7
    parser.skip()
    if not text.startswith('=', parser.pos) or text.startswith('==', parser.pos):
        parser.fail("expected '=' after '$CONFIG'")
    parser.pos += 1
    parser.skip()
    match = _ARRAY_RE.match(text, parser.pos)
    if match:
        parser.pos = match.end()
        parser.skip()
        if not text.startswith('(', parser.pos):
            parser.fail("expected '(' after 'array'")
        closer = ')'
    elif text.startswith('[', parser.pos):
        closer = ']'
    else:
        parser.fail("expected an array ('array (' or '[') after '$CONFIG ='")
    parser.pos += 1
    header_end = parser.pos
    entries = []
    data = parser.array(closer, entries)
    tail_start = entries.pop()
    parser.skip()
    if not text.startswith(';', parser.pos):
        parser.fail("expected ';' after the $CONFIG array")
    parser.pos += 1
    parser.skip()
    closing_tag = False
    if text.startswith('?>', parser.pos):
        closing_tag = True
        rest = text[parser.pos + 2:]
        if rest.strip(' \t\r\n'):
            parser.fail("unexpected content after '?>'")
        parser.pos = parser.end
    if parser.pos != parser.end:
        parser.fail('unexpected content after the $CONFIG array; a config.php holds a single $CONFIG = array (...); statement')
    lossless = not (parser.has_comment or parser.has_expr or parser.has_odd_number or closing_tag)
    return ConfigDocument(text, data, entries, header_end, tail_start, lossless)


def parse_expression(code, where='value'):
    """Parse user-supplied PHP code for a single value.

    Literals (including arrays of literals) are evaluated, anything else is
    kept as PhpExpr. Raises ``PhpValueError`` when the code is not exactly
    one PHP expression (empty, unbalanced brackets, several values, ...).
    """
    if not isinstance(code, str):
        raise PhpValueError('%s: %s must be a string of PHP code, not %s' % (where, EXPR_MARKER, type(code).__name__))
    code = '%s' % (code,)
    stripped = code.strip(' \t\r\n')
    if not stripped:
        raise PhpValueError('%s: %s is empty' % (where, EXPR_MARKER))
    # Parse the code as the value of a one-item array so that the usual rules apply.
    parser = _Parser(stripped + '\n]')
    try:
        value = parser.value(']')
        parser.skip()
        if parser.pos != len(stripped) + 1:
            parser.fail('unexpected text')
    except PhpParseError as exc:
        raise PhpValueError('%s: %s is not a single PHP expression (%s): %r' % (where, EXPR_MARKER, exc.msg, stripped))
    if parser.has_comment:
        raise PhpValueError('%s: %s must not contain comments: %r' % (where, EXPR_MARKER, stripped))
    return value


def parse_value(code):
    """Parse the PHP source of a single value (as ``export_value()`` writes it)."""
    return parse_expression(code)


# ---------------------------------------------------------------------------
# Editing
# ---------------------------------------------------------------------------

class EditResult(object):
    """Outcome of ``edit_config()``."""

    __slots__ = ('text', 'data', 'changed_keys', 'warnings')

    def __init__(self, text, data, changed_keys, warnings):
        self.text = text
        self.data = data
        self.changed_keys = changed_keys
        self.warnings = warnings

    @property
    def changed(self):
        return bool(self.changed_keys)


def key_warning(key):
    """Warning text for a top-level key that Nextcloud does not know, else None."""
    if not isinstance(key, str):
        return 'config key %r is not a string; Nextcloud only uses string keys' % (key,)
    if key in KNOWN_CONFIG_KEYS or key.startswith(FREEFORM_KEY_PREFIXES):
        return None
    close = difflib.get_close_matches(key, KNOWN_CONFIG_KEYS, n=1, cutoff=0.75)
    if close:
        return "config key '%s' is not a known Nextcloud config key; did you mean '%s'?" % (key, close[0])
    return "config key '%s' is not a known Nextcloud config key (typo, or a setting of an app?)" % (key,)


def edit_config(document, settings=None, remove=None, merge=False):
    """Apply settings and removals to a parsed document.

    ``settings`` maps top-level keys to new values (user input, normalized
    with ``to_php()``); with ``merge``, mapping values are merged key by key
    into existing arrays. ``remove`` lists top-level keys to delete. Values
    already in place change nothing: the returned text is then the original
    text. Raises ``PhpValueError`` for values that cannot be written.
    """
    settings = settings or {}
    remove = remove or []
    warnings = []
    data = dict(document.data)
    changed = []
    seen = set()
    for key, value in settings.items():
        php = php_key(key, 'settings')
        where = '%s' % (key,)
        if isinstance(php, str):
            message = key_warning(php)
            if message:
                warnings.append(message)
        if merge and isinstance(value, Mapping) and EXPR_MARKER not in value and isinstance(data.get(php), dict):
            new = merge_values(data[php], value, where)
        else:
            new = to_php(value, where)
        seen.add(php)
        if php not in data or not same_value(data[php], new):
            data[php] = new
            if php not in changed:
                changed.append(php)
    for key in remove:
        php = php_key(key, 'remove')
        if php in seen:
            raise PhpValueError("key '%s' is both in settings and in remove" % (key,))
        if isinstance(php, str):
            message = key_warning(php)
            if message:
                warnings.append(message)
        if php in data:
            del data[php]
            if php not in changed:
                changed.append(php)
    if not changed:
        return EditResult(document.text, document.data, [], warnings)
    text = document.render(data, set(changed))
    # Safety net: what we wrote must read back as exactly what we meant.
    check = parse_config(text)
    if not same_value(check.data, data):
        raise PhpConfigError('internal error: the rewritten config.php does not read back as intended; nothing was written')
    return EditResult(text, data, changed, warnings)


def edit_config_text(text, settings=None, remove=None, merge=False):
    """``parse_config()`` and ``edit_config()`` in one call."""
    return edit_config(parse_config(text), settings, remove, merge)
