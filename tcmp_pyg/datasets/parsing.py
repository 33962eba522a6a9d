"""Reading raw text files with errors that name the file, the line and what
was expected.

Every parser of :mod:`tcmp_pyg.datasets` goes through these helpers, so a
malformed raw file (wrong column count, non-numeric value, NaN/inf, truncated
last line, wrong joint count, empty file, bytes that are not text) always
raises a :class:`ValueError` of the form ``"<file>, line <n>: expected ...
(got ...)"``.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import sys
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Type

import numpy as np

# A raw line: (1-based line number in the file, text without the newline).
Line = Tuple[int, str]

# Values are stored as float32: larger magnitudes would turn into inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataWarning(UserWarning):
    """A fact about the data a dataset read (sequences or files left out,
    bodies dropped). Issued at the user's call site (the first frame outside
    :mod:`tcmp_pyg`), and again whenever the dataset is loaded from its
    processed cache: the facts are stored with the processed data."""


class SkippedSequenceWarning(DataWarning):
    """A raw sequence was left out for a documented reason (e.g. no valid
    frame); the message lists every such sequence of one processing run."""


class SkippedFileWarning(DataWarning):
    """Raw files that could not be read were left out (``on_error='skip'``);
    the message lists every such file and why."""


# Name -> class, to re-issue the warnings stored with a processed dataset.
DATA_WARNINGS: Dict[str, Type[DataWarning]] = {
    c.__name__: c for c in (DataWarning, SkippedSequenceWarning,
                            SkippedFileWarning)}

# A stored warning: (category name, message).
Note = Tuple[str, str]

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__))) + os.sep
_collectors: List[List[Note]] = []


def warn_data(message: str, category: Type[DataWarning] = DataWarning) -> None:
    """Issues a :class:`DataWarning` at the first frame outside
    :mod:`tcmp_pyg` (the user's call), or, while
    :func:`collect_data_warnings` is active, records it instead."""
    if _collectors:
        _collectors[-1].append((category.__name__, message))
        return
    frame, level = sys._getframe(0), 1  # level 1: this function
    while frame is not None and \
            osp.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@contextmanager
def collect_data_warnings() -> Iterator[List[Note]]:
    """Records the :func:`warn_data` calls of the block (to store them with
    the processed data) instead of issuing them; yields the list."""
    notes: List[Note] = []
    _collectors.append(notes)
    try:
        yield notes
    finally:
        _collectors.remove(notes)


def issue_data_warnings(notes: Sequence[Note]) -> None:
    """Issues recorded data warnings (see :func:`collect_data_warnings`)."""
    for name, message in notes:
        warn_data(message, DATA_WARNINGS.get(name, DataWarning))


def where(path: str, lineno: Optional[int] = None) -> str:
    """``"<path>, line <n>"`` (or just the path), the prefix of every error."""
    return str(path) if lineno is None else f'{path}, line {lineno}'


def shorten(token: str, limit: int = 30) -> str:
    """``repr`` of a token, cut so that a corrupt file cannot flood a message."""
    return repr(token if len(token) <= limit else token[:limit] + '...')


def read_lines(path: str) -> List[Line]:
    r"""Reads a text file into its non-blank lines.

    Lines are split on ``\n`` only (a trailing ``\r`` is dropped), so line
    numbers match what an editor shows; whitespace-only lines are skipped.

    Args:
        path (str): The file.

    Returns:
        A list of ``(line_number, text)`` pairs (1-based line numbers).

    Raises:
        ValueError: If the file is not UTF-8 text.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        lineno = raw[:e.start].count(b'\n') + 1
        raise ValueError(f"{where(path, lineno)}: expected UTF-8 text (got byte "
                         f"0x{raw[e.start]:02x})") from None
    lines = []
    for i, line in enumerate(text.split('\n'), start=1):
        line = line.rstrip('\r')
        if line.strip():
            lines.append((i, line))
    return lines


def parse_number(token: str, path: str, lineno: int, what: str) -> float:
    """One finite number within float32 range, or a :class:`ValueError`
    naming file and line."""
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{where(path, lineno)}: expected a number ({what}) "
                         f"(got {shorten(token)})") from None
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise ValueError(f"{where(path, lineno)}: expected a finite number "
                         f"within float32 range ({what}) (got {shorten(token)})")
    return value


def parse_int(token: str, path: str, lineno: int, what: str,
              minimum: Optional[int] = None) -> int:
    """One integer (at least ``minimum``), or a :class:`ValueError`."""
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f"{where(path, lineno)}: expected an integer ({what}) "
                         f"(got {shorten(token)})") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{where(path, lineno)}: expected {what} >= {minimum} "
                         f"(got {value})")
    return value


def parse_rows(path: str, lines: Sequence[Line], num_values: int, what: str,
               sep: Optional[str] = None) -> np.ndarray:
    r"""Parses lines of ``num_values`` finite numbers each.

    Args:
        path (str): The file (for error messages).
        lines (Sequence[Line]): ``(line_number, text)`` pairs, e.g. from
            :func:`read_lines`.
        num_values (int): Values expected on every line.
        what (str): What a line holds, e.g. ``'frame number + 2 x 15 x 3
            coordinates'``; quoted in error messages.
        sep (str, optional): Value separator. (default: :obj:`None`, any
            whitespace)

    Returns:
        A float64 array of shape ``[len(lines), num_values]``.

    Raises:
        ValueError: Naming the first bad line: wrong value count (hinted
            as a truncated line when only the last line is short, as another
            format when every line has the same wrong count), a non-numeric
            value, NaN, inf or a magnitude beyond float32.
    """
    rows = [line.split(sep) for _, line in lines]
    # Fast path: one numpy conversion; the slow loop below only runs to find
    # and describe the first bad line.
    if all(len(row) == num_values for row in rows):
        try:
            out = np.array(rows, dtype=np.float64).reshape(len(rows), num_values)
        except ValueError:
            out = None
        if out is not None and (np.abs(out) <= FLOAT32_MAX).all():  # NaN fails too
            return out
    sep_name = 'whitespace-separated' if sep is None else f"'{sep}'-separated"
    values = []
    for i, ((lineno, _), row) in enumerate(zip(lines, rows)):
        if len(row) != num_values:
            hint = ''
            if len(row) < num_values and 0 < i == len(rows) - 1:
                # Short only on the last line, after complete ones.
                hint = ' (truncated line?)'
            elif i == 0 and len(rows) > 1 and all(len(r) == len(row)
                                                  for r in rows):
                hint = (f' (every line has {len(row)}: a file of another '
                        f'format?)')
            raise ValueError(f"{where(path, lineno)}: expected {num_values} "
                             f"{sep_name} values ({what}) (got {len(row)})"
                             f"{hint}")
        values.append([parse_number(tok, path, lineno, what) for tok in row])
    return np.array(values, dtype=np.float64).reshape(len(rows), num_values)


def check_integer_column(values: np.ndarray, path: str, lines: Sequence[Line],
                         what: str) -> np.ndarray:
    """Checks that a parsed column holds integers (e.g. frame numbers) and
    returns it as int64."""
    bad = np.flatnonzero((values != np.round(values)) | (np.abs(values) > 2**53))
    if bad.size:
        lineno = lines[int(bad[0])][0]
        raise ValueError(f"{where(path, lineno)}: expected an integer {what} "
                         f"(got {float(values[bad[0]])!r})")
    return values.astype(np.int64)


def require_lines(path: str, lines: Sequence[Line], what: str) -> None:
    """Raises a :class:`ValueError` if a file has no non-blank line."""
    if not lines:
        raise ValueError(f"{path}: expected {what} (got an empty file)")


def warn_skipped(dataset: str, names: Sequence[str], reason: str,
                 limit: int = 20) -> None:
    """One :class:`SkippedSequenceWarning` listing every skipped sequence."""
    if not names:
        return
    shown = ', '.join(names[:limit])
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    warn_data(f"{dataset}: skipped {len(names)} sequence(s) {reason}: "
              f"{shown}{more}", SkippedSequenceWarning)
