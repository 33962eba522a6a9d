"""Sweeps with the local launcher: failed runs are retried once, reported with
their error, and do not stop the rest of the grid."""
import csv
import sys

import pytest

from tcmp_pyg.cli import main
from tcmp_pyg.sweep import (CSV_COLUMNS, Combination, collect, combinations,
                            failures_table, run_sweep, train_command,
                            write_results)

TRAIN_ARGS = ['--epochs', '1', '--num-samples', '40', '--num-frames', '8',
              '--batch-size', '8', '--lr', '0.05', '--warmup', '0']
AMOUNT_ERROR = "exit code 1: error: Expected a float 'amount' in [0, 1) (got 1.5)."


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_failed_run_is_retried_once_reported_and_the_rest_finish(tmp_path):
    out = tmp_path / 'sweep'
    # run_sweep does not validate amounts (the CLI does): 1.5 fails in `train`.
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['mp'], amounts=[0.5, 1.5],
                     folds=[None], jobs=2, train_args=TRAIN_ARGS, progress=False)
    ok, bad = rows
    assert (ok['amount'], ok['status'], ok['error']) == (0.5, 'ok', '')
    assert 0.0 <= ok['test_accuracy'] <= 1.0
    assert (bad['amount'], bad['status']) == (1.5, 'failed')
    assert bad['error'] == AMOUNT_ERROR and 'test_accuracy' not in bad
    log = (out / 'runs' / 'stgcn-compact_mp_1.5_seed0' / 'train.log').read_text()
    assert log.count("Expected a float 'amount'") == 2  # started twice

    table = read_csv(out / 'results.csv')
    assert tuple(table[0]) == CSV_COLUMNS
    assert [(r['status'], r['error']) for r in table] == \
        [('ok', ''), ('failed', AMOUNT_ERROR)]
    assert table[1]['test_accuracy'] == ''
    md = (out / 'results.md').read_text()
    assert '| stgcn-compact | mp | 50 % | 1 |' in md
    assert 'Failed runs (1 of 2;' in md
    assert f'| stgcn-compact | mp | 150 % |  | 0 | {AMOUNT_ERROR} |' in md
    assert '1 runs, 1 failed; this invocation took' in md
    assert (out / 'accuracy_vs_rate.png').exists()


def test_failures_table_escapes_the_error():
    rows = [dict(model='m', method='tcmp', amount=0.9, fold=2, seed=1,
                 status='failed', error='exit code 1: a | b\nc')]
    assert failures_table(rows).splitlines()[-1] == \
        '| m | tcmp | 90 % | 2 | 1 | exit code 1: a \\| b c |'
    assert failures_table([dict(rows[0], status='ok', error='')]) == ''


def test_collect_reports_failed_and_leaves_out_unfinished_runs(tmp_path):
    grid = [Combination('m', 'dense', 0.0, None, 0), Combination('m', 'tcmp', 0.9, 1, 0)]
    rows = collect(str(tmp_path), grid, {grid[1].name: 'killed by SIGKILL'})
    assert rows == [dict(model='m', method='tcmp', amount=0.9, fold=1, seed=0,
                         status='failed', error='killed by SIGKILL')]
    write_results(str(tmp_path), rows)  # no finished run: no plot, no error
    assert not (tmp_path / 'accuracy_vs_rate.png').exists()
    assert 'killed by SIGKILL' in (tmp_path / 'results.md').read_text()


def test_cli_sweep_exits_1_after_writing_the_failed_runs(tmp_path, capsys):
    out = tmp_path / 'sweep'
    code = main(['sweep', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
                 '--out', str(out), '--methods', 'dense', '--quiet',
                 '--train-args', ' '.join(TRAIN_ARGS + ['--batch-size', '0'])])
    captured = capsys.readouterr()
    assert code == 1
    assert 'error: 1 of 1 sweep runs failed' in captured.err
    assert '| stgcn-compact | dense | — |  | 0 | exit code 1: ' in captured.out
    (row,) = read_csv(out / 'results.csv')
    assert row['status'] == 'failed' and row['error'].startswith('exit code 1: ')


def test_cli_sweep_rejects_the_options_of_the_other_launcher(tmp_path, capsys):
    base = ['sweep', '--dataset', 'synthetic', '--out', str(tmp_path / 'sweep')]
    assert main(base + ['--launcher', 'ray', '--jobs', '2']) == 1
    assert capsys.readouterr().err.startswith(
        'error: --jobs: not an option of --launcher ray (local: --jobs,')
    assert main(base + ['--address', 'auto', '--gpus-per-run', '1']) == 1
    assert capsys.readouterr().err.startswith(
        'error: --address, --gpus-per-run: not an option of --launcher local')
    assert not (tmp_path / 'sweep').exists()


def test_ray_launcher_without_ray_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'ray', None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r"needs Ray: pip install 'tcmp-pyg\[ray\]'"):
        run_sweep('synthetic', None, str(tmp_path / 'a'), models=['stgcn-compact'],
                  methods=['dense'], amounts=[0.9], folds=[None], launcher='ray')
    assert main(['sweep', '--dataset', 'synthetic', '--out', str(tmp_path / 'b'),
                 '--launcher', 'ray', '--quiet']) == 1
    assert "needs Ray: pip install 'tcmp-pyg[ray]'" in capsys.readouterr().err


def test_dense_rivals_at_other_widths(tmp_path):
    grid = combinations(['stgcn-compact'], ['dense', 'mp'], [0.9], [None], [0],
                        widths=[1.0, 0.25])
    assert [(c.label, c.width) for c in grid] == [
        ('dense', 1.0), ('dense-w0.25', 0.25), ('mp', 1.0)]
    assert grid[1].name == 'stgcn-compact_dense-w0.25_seed0'
    assert train_command(grid[1], 'o', 'synthetic', None, [])[-2:] == ['--width', '0.25']
    assert '--width' not in train_command(grid[0], 'o', 'synthetic', None, [])

    out = tmp_path / 'sweep'
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['dense'], amounts=[0.9],
                     folds=[None], widths=[0.25], train_args=TRAIN_ARGS,
                     progress=False)
    (row,) = read_csv(out / 'results.csv')
    assert rows[0]['method'] == row['method'] == 'dense-w0.25'
    assert row['status'] == 'ok' and int(row['weights']) == int(row['kept']) > 0
    assert int(row['weights']) < 116928 / 10  # the full-width preset's
    assert '| stgcn-compact | dense-w0.25 | — | 1 |' in (out / 'results.md').read_text()
    with pytest.raises(ValueError, match='either as widths .* or as a train'):
        run_sweep('synthetic', None, str(out), models=['stgcn-compact'],
                  methods=['dense'], amounts=[0.9], folds=[None], widths=[0.5],
                  train_args=['--width=0.5'], progress=False)
