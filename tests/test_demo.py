import contextlib
import csv
import io

import pytest

from tcmp_pyg.cli import main
from tcmp_pyg.demo import markdown_table, run_demo


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """(report folder, rows, stdout, stderr) of a one-epoch demo run with
    progress on and output that is not a terminal (as `make demo > log`)."""
    out = tmp_path_factory.mktemp('demo') / 'report'
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rows = run_demo(str(out), epochs=1, num_samples=60, progress=True)
    return out, rows, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def demo(demo_run):
    return demo_run[:2]


def test_demo_log_has_one_line_per_epoch_and_no_bar_frames(demo_run):
    _, _, stdout, stderr = demo_run
    assert '\r' not in stdout and '\r' not in stderr
    # Five runs of one epoch: five epoch lines, no bar.
    assert [line.split(',')[0] for line in stderr.splitlines()] == ['epoch 1/1'] * 5
    assert stdout.count('[demo] training') == 5


def test_demo_runs_dense_then_mp_and_tcmp_at_both_rates(demo):
    out, rows = demo
    assert [(r['method'], r['amount']) for r in rows] == [
        ('dense', 0.0), ('mp', 0.99), ('tcmp', 0.99), ('mp', 0.999), ('tcmp', 0.999)]
    for r in rows:
        assert 0.0 <= r['test_accuracy'] <= 1.0
        assert r['masked_ms'] > 0
    dense = rows[0]
    assert dense['dead'] == 0 and dense['compact_params'] == dense['params']
    for r in rows[1:]:
        assert r['nominal_sparsity'] == pytest.approx(r['amount'], abs=1e-3)
        assert r['effective_sparsity'] >= r['nominal_sparsity'] - 1e-9
    for r in (r for r in rows if r['method'] == 'tcmp'):
        # TCMP keeps only live weights, so compaction keeps the exact budget.
        assert r['dead'] == 0 and r['live'] == r['kept']
        assert r['effective_sparsity'] == pytest.approx(r['nominal_sparsity'])
        assert 0 < r['compact_params'] < r['params']
        assert r['gating_change'] == 0


def test_demo_writes_report_with_linked_plots(demo):
    out, rows = demo
    report = (out / 'report.md').read_text()
    assert markdown_table(rows) in report
    for name in ('subnetworks_0.99.png', 'subnetworks_0.999.png',
                 'density_tcmp_0.99.png', 'density_mp_0.999.png',
                 'accuracy_vs_rate.png', 'skeleton.png'):
        assert (out / name).stat().st_size > 1000
        assert f']({name})' in report
    with open(out / 'results.csv') as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    for run in ('dense', 'mp_0.99', 'tcmp_0.99', 'mp_0.999', 'tcmp_0.999'):
        assert (out / 'runs' / run / 'metrics.json').exists()


def test_demo_cli_reports_a_missing_dataset(tmp_path, capsys):
    code = main(['demo', '--dataset', 'sbu', '--root', str(tmp_path / 'nowhere'),
                 '--out', str(tmp_path / 'report'), '--quiet'])
    assert code == 1
    assert 'nowhere' in capsys.readouterr().err
