import numpy as np
import pytest

from tcmp_pyg.datasets.parsing import (SkippedSequenceWarning,
                                       check_integer_column, parse_int,
                                       parse_rows, read_lines, warn_skipped)


def write(tmp_path, content, name='f.txt'):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def test_read_lines_numbers_and_blank_lines(tmp_path):
    path = write(tmp_path, '1 2\r\n\n   \n3 4 \n')
    assert read_lines(path) == [(1, '1 2'), (4, '3 4 ')]
    assert read_lines(write(tmp_path, '')) == []


def test_read_lines_rejects_binary(tmp_path):
    path = write(tmp_path, b'1 2\n3 \xff 4\n')
    with pytest.raises(ValueError, match=r'f\.txt, line 2: expected UTF-8 text'):
        read_lines(path)


def test_parse_rows_ok(tmp_path):
    lines = [(1, '1,2.5,-3e2'), (2, ' 4 , 5,6 ')]
    out = parse_rows('f', lines, 3, 'three numbers', sep=',')
    assert out.dtype == np.float64
    assert out.tolist() == [[1, 2.5, -300], [4, 5, 6]]
    assert parse_rows('f', [], 3, 'x').shape == (0, 3)


@pytest.mark.parametrize('lines, match', [
    ([(1, '1 2 3'), (7, '1 2')], r"f, line 7: expected 3 whitespace-separated "
                                 r"values \(a b c\) \(got 2\) \(truncated line\?\)"),
    ([(3, '1 2 3 4')], r'line 3: expected 3 .* \(got 4\)'),
    ([(2, '1 x 3')], r"line 2: expected a number \(a b c\) \(got 'x'\)"),
    ([(5, '1 nan 3')], r"line 5: expected a finite number .*'nan'"),
    ([(5, '1 -inf 3')], r"line 5: expected a finite number .*'-inf'"),
    ([(5, '1 3e38 -4e38')], r"line 5: expected a finite number within float32 "
                            r"range \(a b c\) \(got '-4e38'\)"),
    ([(9, '1 2 ' + 'y' * 500)], r"got 'yyyy.*\.\.\.'\)$"),
])
def test_parse_rows_errors(lines, match):
    with pytest.raises(ValueError, match=match):
        parse_rows('f', lines, 3, 'a b c')


def test_integers():
    lines = [(1, ''), (2, ''), (3, '')]
    assert check_integer_column(np.array([1., 2., 3.]), 'f', lines,
                                'frame').tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r'f, line 2: expected an integer frame'):
        check_integer_column(np.array([1., 2.5, 3.]), 'f', lines, 'frame')
    with pytest.raises(ValueError, match='line 3: expected an integer frame'):
        check_integer_column(np.array([1., 2., 1e300]), 'f', lines, 'frame')
    assert parse_int('12', 'f', 1, 'count') == 12
    with pytest.raises(ValueError, match=r'line 4: expected count >= 0 \(got -1\)'):
        parse_int('-1', 'f', 4, 'count', minimum=0)
    with pytest.raises(ValueError, match=r"expected an integer \(count\) \(got '1.5'\)"):
        parse_int('1.5', 'f', 4, 'count')


def test_warn_skipped_lists_everything_once():
    with pytest.warns(SkippedSequenceWarning,
                      match=r'Demo: skipped 3 sequence\(s\) that are empty: a, b, c$'):
        warn_skipped('Demo', ['a', 'b', 'c'], 'that are empty')
    with pytest.warns(SkippedSequenceWarning, match='and 5 more'):
        warn_skipped('Demo', [str(i) for i in range(25)], 'x')
