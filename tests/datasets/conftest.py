"""Fixtures of the parser property tests."""
import re
from pathlib import Path

import pytest

# Corruptions thrown at every parser by the property tests.
_TOKENS = [b'', b'x', b'nan', b'NaN', b'inf', b'-inf', b'1e999', b'-', b'.',
           b',', b' ', b'\t', b'\n', b'\r', b'\x00', b'\xff\xfe', b'0', b'1.5',
           b'99999999999999999999', b'1e39', b'-4e38', b'1,2', b'NaN NaN']


def _corrupt(data, text: str) -> bytes:
    """Applies 1-3 random edits (truncate, delete, insert, replace a token,
    drop or duplicate a line) to ``text``, drawing from hypothesis ``data``."""
    from hypothesis import strategies as st

    buf = bytearray(text.encode())
    for _ in range(data.draw(st.integers(1, 3), label='edits')):
        op = data.draw(st.sampled_from(['truncate', 'delete', 'insert', 'token',
                                        'drop_line', 'dup_line']), label='op')
        n = len(buf)
        if op == 'truncate':
            buf = buf[:data.draw(st.integers(0, n))]
        elif op == 'delete':
            i = data.draw(st.integers(0, n))
            del buf[i:i + data.draw(st.integers(1, 20))]
        elif op == 'insert':
            i = data.draw(st.integers(0, n))
            buf[i:i] = data.draw(st.sampled_from(_TOKENS) | st.binary(max_size=4))
        elif op == 'token':
            parts = re.split(rb'([\s,]+)', bytes(buf))  # odd: separators
            i = 2 * data.draw(st.integers(0, (len(parts) - 1) // 2))
            parts[i] = data.draw(st.sampled_from(_TOKENS))
            buf = bytearray(b''.join(parts))
        else:
            lines = bytes(buf).split(b'\n')
            i = data.draw(st.integers(0, len(lines) - 1))
            if op == 'drop_line':
                del lines[i]
            else:
                lines.insert(i, lines[i])
            buf = bytearray(b'\n'.join(lines))
    return bytes(buf)


@pytest.fixture(scope='session')
def corrupt():
    """``corrupt(data, text) -> bytes``: a randomly damaged copy of a file."""
    return _corrupt


@pytest.fixture(scope='session')
def fuzz_dir(tmp_path_factory) -> Path:
    """A folder the property tests overwrite their damaged files in."""
    return tmp_path_factory.mktemp('fuzz')
