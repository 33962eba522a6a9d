"""The long fuzzing run of every raw-format parser (``make test-slow``).

The default suite runs each parser's property test (``test_*_only_raises_
clear_value_errors`` in ``test_sbu.py``, ``test_utkinect.py``, ``test_msr.py``,
``test_fpha.py`` and ``test_ntu.py``) on 100 damaged files. Here the same
property tests run on ``TCMP_PYG_FUZZ_EXAMPLES`` (default 1,000) damaged
files per parser, stricter: every example must end within a time limit (a
hang fails), and any warning other than a ``SkippedSequenceWarning`` fails.
The NTU processing (parallel workers, both storages) is fuzzed end to end.
"""
import contextlib
import os
import signal
import warnings
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_fpha
import test_msr
import test_ntu
import test_sbu
import test_utkinect
from tcmp_pyg.datasets import NTURGBD, SkippedSequenceWarning

EXAMPLES = int(os.environ.get('TCMP_PYG_FUZZ_EXAMPLES', '1000'))
# Damaged files are a few KB: a parser taking seconds on one is hanging.
DEADLINE = timedelta(seconds=5)
TIME_LIMIT = 30

PROPERTY_TESTS = {
    'sbu': test_sbu.test_parser_only_raises_clear_value_errors,
    'utkinect-joints': test_utkinect.test_joint_parser_only_raises_clear_value_errors,
    'utkinect-labels': test_utkinect.test_label_parser_only_raises_clear_value_errors,
    'msr': test_msr.test_parser_only_raises_clear_value_errors,
    'fpha-skeleton': test_fpha.test_skeleton_parser_only_raises_clear_value_errors,
    'fpha-split': test_fpha.test_split_parser_only_raises_clear_value_errors,
    'ntu': test_ntu.test_parser_only_raises_clear_value_errors,
}


class Hang(AssertionError):
    """An example ran past the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raises :class:`Hang` in the main thread after ``seconds``."""
    def expire(signum, frame):
        raise Hang(f'the parser ran longer than {seconds} s (a hang?)')

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def only_skipped_warnings():
    """Any warning but a SkippedSequenceWarning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        warnings.simplefilter('ignore', SkippedSequenceWarning)
        yield


def long_run(test, count: list):
    """``test``'s property on ``EXAMPLES`` examples, counted in ``count``."""
    inner = test.hypothesis.inner_test

    def example(data, **fixtures):
        count[0] += 1
        with time_limit(TIME_LIMIT), only_skipped_warnings():
            inner(data=data, **fixtures)

    return settings(max_examples=EXAMPLES, deadline=DEADLINE,
                    suppress_health_check=[HealthCheck.too_slow])(
        given(data=st.data())(example))


@pytest.mark.slow
@pytest.mark.parametrize('parser', sorted(PROPERTY_TESTS))
def test_long_fuzz(parser, corrupt, fuzz_dir, record_property):
    count = [0]
    long_run(PROPERTY_TESTS[parser], count)(corrupt=corrupt, fuzz_dir=fuzz_dir)
    record_property('fuzz_cases', count[0])
    assert count[0] >= EXAMPLES


def test_the_long_run_covers_every_parser():
    """Each parser's 100-example property test is wired into the long run."""
    for test in PROPERTY_TESTS.values():
        assert test.hypothesis.inner_test.__name__.endswith(
            'only_raises_clear_value_errors')
    assert len(PROPERTY_TESTS) == 7


def test_time_limit_interrupts_a_hang():
    with pytest.raises(Hang, match='longer than 0.05 s'):
        with time_limit(0.05):
            while True:
                pass


# ---- NTU processing end to end ----------------------------------------------

def ntu_corpus(root, rng, damaged: bytes):
    """Two valid training samples and one damaged sample."""
    raw = root / 'raw'
    raw.mkdir(parents=True, exist_ok=True)
    for name in ('S001C001P001R001A001', 'S001C002P002R001A002'):
        (raw / f'{name}.skeleton').write_text(
            test_ntu.ntu_text(test_ntu.scene(rng, T=3)))
    (raw / 'S001C001P004R001A003.skeleton').write_bytes(damaged)
    return raw / 'S001C001P004R001A003.skeleton'


@pytest.mark.slow
def test_ntu_processing_of_a_damaged_corpus(corrupt, tmp_path_factory, record_property):
    """Processing either succeeds (the damaged file parsed, or skipped with a
    SkippedSequenceWarning) or raises a ValueError naming it, and leaves no
    processed file behind."""
    count = [0]

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def run(data):
        count[0] += 1
        root = tmp_path_factory.mktemp('ntu')
        rng = np.random.default_rng(data.draw(st.integers(0, 100)))
        frames = [[(test_ntu.A, rng.normal(size=(25, 3)))][:data.draw(st.integers(0, 1))]
                  for _ in range(data.draw(st.integers(1, 3)))]
        damaged = ntu_corpus(root, rng, corrupt(data, test_ntu.ntu_text(frames)))
        on_disk = data.draw(st.booleans())
        num_workers = data.draw(st.sampled_from([0, 2]))
        with time_limit(TIME_LIMIT), only_skipped_warnings():
            try:
                ds = NTURGBD(root, num_frames=4, on_disk=on_disk,
                             num_workers=num_workers)
            except ValueError as e:
                assert str(damaged) in str(e)
                folder = root / 'processed'
                assert not folder.exists() or not [
                    f for f in os.listdir(folder) if f.startswith('ntu_')]
            else:
                assert len(ds) >= 2 and np.isfinite(ds[0].x.numpy()).all()

    run()
    record_property('fuzz_cases', count[0])
    assert count[0] >= EXAMPLES
