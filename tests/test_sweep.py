"""Sweeps with the local launcher: failed runs are retried once, reported with
their error, and do not stop the rest of the grid."""
import csv
import json
import sys

import pytest
import torch

from tcmp_pyg import load_model
from tcmp_pyg.cli import main
from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import magnitude_prune
from tcmp_pyg.sweep import (CSV_COLUMNS, Combination, collect, combinations,
                            failures_table, oneshot_methods, pruning_method,
                            run_sweep, train_command, write_results)

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
    conn = json.loads((out / 'runs' / 'stgcn-compact_mp_0.5_seed0' /
                       'metrics.json').read_text())['connectivity']
    assert 0 < conn['reachable_outputs'] <= conn['num_outputs']
    assert (table[0]['reachable_outputs'], table[0]['num_outputs']) == (
        str(conn['reachable_outputs']), str(conn['num_outputs']))
    assert table[1]['reachable_outputs'] == ''  # failed: nothing to count
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


def test_oneshot_methods_map_to_the_magnitude_allocations():
    assert oneshot_methods(['mp', 'random', 'mp-effective', 'tcmp', 'mp-layer']) \
        == ['oneshot', 'oneshot-effective', 'oneshot-layer']
    assert [pruning_method(m) for m in ('dense', 'tcmp', 'oneshot', 'oneshot-lamp')] \
        == [None, 'tcmp', 'mp', 'mp-lamp']
    combo = Combination('stgcn-compact', 'oneshot', 0.9, 2, 1)
    extra = ['--epochs', '3', '--prune-start=0.2', '--prune-end', '0.5',
             '--tcmp-mode', 'relaxed', '--lr', '0.1']
    cmd = train_command(combo, 'out/runs/' + combo.name, 'sbu', None, extra,
                        finetune_epochs=5)
    tail = cmd[cmd.index('--prune'):]
    assert tail == ['--prune', 'mp', '--amount', '0.9', '--init-from',
                    'out/runs/stgcn-compact_dense_fold2_seed1/model.pt',
                    '--prune-start', '0', '--prune-end', '0', '--epochs', '5',
                    '--lr', '0.1']
    cmd = train_command(combo, 'out/runs/' + combo.name, 'sbu', None, extra)
    assert cmd[-4:] == ['--epochs', '3', '--lr', '0.1']  # the sweep's epochs


def test_oneshot_needs_the_dense_run_in_the_grid(tmp_path, capsys):
    with pytest.raises(ValueError, match="method 'oneshot' fine-tunes the trained "
                       r"'dense' run of the same model, fold and seed \("
                       r"stgcn-compact_dense_seed1\), which the grid does not "
                       r"contain: add 'dense' to the methods"):
        run_sweep('synthetic', None, str(tmp_path / 'a'), models=['stgcn-compact'],
                  methods=['oneshot'], amounts=[0.9], folds=[None], seeds=[1])
    with pytest.raises(ValueError, match='finetune_epochs applies to the oneshot '
                                         'methods only'):
        run_sweep('synthetic', None, str(tmp_path / 'a'), models=['stgcn-compact'],
                  methods=['dense', 'mp'], amounts=[0.9], folds=[None],
                  finetune_epochs=3)
    assert main(['sweep', '--dataset', 'synthetic', '--out', str(tmp_path / 'b'),
                 '--methods', 'oneshot', 'tcmp', '--quiet']) == 1
    assert "add 'dense' to the methods" in capsys.readouterr().err
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def test_oneshot_run_fine_tunes_its_finished_dense_run(tmp_path):
    out = tmp_path / 'sweep'
    # Listed first and two jobs: it must still wait for the dense run.
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['oneshot', 'dense'],
                     amounts=[0.9], folds=[None], jobs=2, train_args=TRAIN_ARGS,
                     progress=False, finetune_epochs=2)
    assert [(r['method'], r['status'], r['epochs']) for r in rows] == \
        [('oneshot', 'ok', 2), ('dense', 'ok', 1)]
    dense, oneshot = out / 'runs' / 'stgcn-compact_dense_seed0', \
        out / 'runs' / 'stgcn-compact_oneshot_0.9_seed0'
    log = (oneshot / 'train.log').read_text()
    assert 'error' not in log and log.count('test accuracy') == 1  # one attempt
    metrics = json.loads((oneshot / 'metrics.json').read_text())
    assert metrics['init_from'] == str(dense / 'model.pt')
    assert (metrics['args']['prune'], metrics['args']['prune_start'],
            metrics['args']['prune_end']) == ('mp', 0.0, 0.0)
    # Pruned at step 0 from the trained dense weights: their global top-|w|.
    expected = load_model(dense / 'model.pt')
    magnitude_prune(expected, 0.9)
    tuned = load_model(oneshot / 'model.pt')
    assert all(torch.equal(a.weight_mask, b.weight_mask) for (_, a), (_, b) in
               zip(prunable_weights(expected), prunable_weights(tuned)))
    assert '| stgcn-compact | oneshot | 90 % | 1 |' in (out / 'results.md').read_text()


def test_oneshot_run_is_not_started_when_its_dense_run_failed(tmp_path):
    out = tmp_path / 'sweep'
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['dense', 'oneshot'],
                     amounts=[0.9], folds=[None], jobs=2,
                     train_args=TRAIN_ARGS + ['--batch-size', '0'], progress=False)
    assert [(r['method'], r['status']) for r in rows] == \
        [('dense', 'failed'), ('oneshot', 'failed')]
    assert rows[1]['error'] == 'not run: its dense run stgcn-compact_dense_seed0 failed'
    assert not (out / 'runs' / 'stgcn-compact_oneshot_0.9_seed0').exists()


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
