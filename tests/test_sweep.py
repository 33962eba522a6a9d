"""Sweeps with the local launcher: failed runs are retried once, reported with
their error, and do not stop the rest of the grid; the sweep's statistics
(n, intervals, paired comparisons) and costs."""
import csv
import json
import math
import sys

import pytest
import torch

from tcmp_pyg import load_model
from tcmp_pyg.cli import main
from tcmp_pyg.nn import prunable_weights
from tcmp_pyg.pruning import TCMP, magnitude_prune
from tcmp_pyg.sweep import (COMPARISON_COLUMNS, COST_COLUMNS, CSV_COLUMNS,
                            Combination, bootstrap_interval, collect, combinations,
                            compare, comparisons_table, failures_table,
                            markdown_table, mean_interval, oneshot_methods,
                            pruning_method, run_sweep, summarize, t_interval,
                            train_command, write_results)

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

    # The run's costs come from its metrics.json (`train` records them).
    assert ok['params'] >= ok['nonzero_params'] > 0 and ok['macs'] > 0
    assert 0 < ok['compact_params'] <= ok['params']
    assert 0 < ok['compact_macs'] <= ok['macs']
    table = read_csv(out / 'results.csv')
    assert tuple(table[0]) == CSV_COLUMNS
    conn = json.loads((out / 'runs' / 'stgcn-compact_mp_0.5_seed0' /
                       'metrics.json').read_text())['connectivity']
    assert 0 < conn['reachable_outputs'] <= conn['num_outputs']
    assert (table[0]['reachable_outputs'], table[0]['num_outputs']) == (
        str(conn['reachable_outputs']), str(conn['num_outputs']))
    assert table[1]['reachable_outputs'] == ''  # failed: nothing to count
    assert CSV_COLUMNS[-len(COST_COLUMNS):] == COST_COLUMNS  # appended
    assert [(r['status'], r['error']) for r in table] == \
        [('ok', ''), ('failed', AMOUNT_ERROR)]
    assert table[1]['test_accuracy'] == ''
    md = (out / 'results.md').read_text()
    assert '| stgcn-compact | mp | 50 % | 1 |' in md
    assert 'Failed runs (1 of 2;' in md
    assert f'| stgcn-compact | mp | 150 % |  | 0 | {AMOUNT_ERROR} |' in md
    assert '1 runs, 1 failed; this invocation took' in md
    assert (out / 'accuracy_vs_rate.png').exists()
    assert (out / 'accuracy_vs_cost.png').exists()
    # One method and no dense run: nothing to compare, the header only.
    assert (out / 'comparisons.csv').read_text().splitlines() == \
        [','.join(COMPARISON_COLUMNS)]
    assert 'Paired differences' not in md


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
        == ['oneshot', 'oneshot-effective', 'oneshot-layer', 'oneshot-tcmp']
    assert [pruning_method(m) for m in ('dense', 'tcmp', 'oneshot', 'oneshot-lamp',
                                        'oneshot-tcmp')] \
        == [None, 'tcmp', 'mp', 'mp-lamp', 'tcmp']
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


def test_oneshot_tcmp_selects_consistently_from_the_trained_dense_run(tmp_path):
    out = tmp_path / 'sweep'
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['dense', 'oneshot-tcmp'],
                     amounts=[0.99], folds=[None], jobs=1, train_args=TRAIN_ARGS,
                     progress=False, finetune_epochs=2)
    assert [(r['method'], r['status'], r['dead']) for r in rows] == \
        [('dense', 'ok', 0), ('oneshot-tcmp', 'ok', 0)]
    run = out / 'runs' / 'stgcn-compact_oneshot-tcmp_0.99_seed0'
    metrics = json.loads((run / 'metrics.json').read_text())
    assert metrics['args']['prune'] == 'tcmp'
    assert metrics['init_from'] == str(out / 'runs' / 'stgcn-compact_dense_seed0'
                                       / 'model.pt')
    # TCMP's selection at step 0 on the trained dense weights, kept to the end.
    expected = load_model(metrics['init_from'])
    pruner = TCMP(expected, 0.99, start=0.0, end=0.0)
    pruner.setup(10)
    pruner.step(0)
    tuned = load_model(run / 'model.pt')
    assert all(torch.equal(a.weight_mask, b.weight_mask) for (_, a), (_, b) in
               zip(prunable_weights(expected), prunable_weights(tuned)))
    assert metrics['connectivity']['kept'] == pruner.budget


def test_summarize_only_starts_no_run(tmp_path, capsys):
    out, data = tmp_path / 'sweep', str(tmp_path / 'data')
    grid = dict(models=['stgcn-compact'], methods=['dense'], amounts=[0.9],
                folds=[None], train_args=TRAIN_ARGS, progress=False)
    with pytest.raises(ValueError, match='no finished run of the grid in'):
        run_sweep('synthetic', data, str(out), summarize_only=True, **grid)
    assert not out.exists()
    run_sweep('synthetic', data, str(out), seeds=[0], **grid)
    rows = run_sweep('synthetic', data, str(out), seeds=[0, 1], summarize_only=True,
                     **grid)
    assert [(r['method'], r['seed']) for r in rows] == [('dense', 0)]
    assert sorted(p.name for p in (out / 'runs').iterdir()) == \
        ['stgcn-compact_dense_seed0']
    assert main(['sweep', '--dataset', 'synthetic', '--root', data, '--out', str(out),
                 '--methods', 'dense', '--seeds', '0', '1', '--summarize-only',
                 '--quiet']) == 0
    assert '1 runs; results in' in capsys.readouterr().out
    assert not (out / 'runs' / 'stgcn-compact_dense_seed1').exists()


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



def test_a_method_variant_trains_with_its_arguments_under_its_label(tmp_path, capsys):
    variants = {'tcmp-relaxed': ('tcmp', ['--tcmp-mode', 'relaxed'])}
    grid = combinations(['stgcn-compact'], ['tcmp', 'tcmp-relaxed'], [0.9], [None],
                        [0], variants=variants)
    assert [(c.label, c.kind, c.name) for c in grid] == [
        ('tcmp', 'tcmp', 'stgcn-compact_tcmp_0.9_seed0'),
        ('tcmp-relaxed', 'tcmp', 'stgcn-compact_tcmp-relaxed_0.9_seed0')]
    cmd = train_command(grid[1], 'o', 'synthetic', None, ['--tcmp-mode', 'hard'])
    # The variant's own arguments come last: they win over the sweep's.
    assert cmd[cmd.index('--prune'):] == ['--prune', 'tcmp', '--amount', '0.9',
                                          '--tcmp-mode', 'hard',
                                          '--tcmp-mode', 'relaxed']

    out = tmp_path / 'sweep'
    rows = run_sweep('synthetic', str(tmp_path / 'data'), str(out),
                     models=['stgcn-compact'], methods=['tcmp', 'tcmp-relaxed'],
                     amounts=[0.9], folds=[None], jobs=2, train_args=TRAIN_ARGS,
                     progress=False, variants=variants)
    assert [(r['method'], r['status']) for r in rows] == \
        [('tcmp', 'ok'), ('tcmp-relaxed', 'ok')]
    modes = [json.loads((out / 'runs' / c.name / 'metrics.json').read_text())
             ['args']['tcmp_mode'] for c in grid]
    assert modes == ['hard', 'relaxed']
    comparisons = read_csv(out / 'comparisons.csv')
    assert [(c['method'], c['versus'], c['pairs']) for c in comparisons] == [
        ('tcmp', 'tcmp-relaxed', '1'), ('tcmp-relaxed', 'tcmp', '1')]

    # The CLI spelling; the same folder summarised again with the variant.
    assert main(['sweep', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
                 '--out', str(out), '--methods', 'tcmp', 'tcmp-relaxed', '--amounts',
                 '0.9', '--variant', 'tcmp-relaxed=tcmp --tcmp-mode relaxed',
                 '--summarize-only', '--quiet']) == 0
    assert '| stgcn-compact | tcmp-relaxed | 90 % | 1 |' in capsys.readouterr().out


@pytest.mark.parametrize('variants, methods, message', [
    ({'tcmp': ('tcmp', ['--tcmp-mode', 'relaxed'])}, ['tcmp'],
     "variant 'tcmp': the label must differ from the sweep methods"),
    ({'dense-w2': ('mp', [])}, ['dense-w2'], 'must differ from the sweep methods'),
    ({'a/b': ('mp', [])}, ['a/b'], 'a label is letters, digits'),
    ({'v': ('dense', [])}, ['v'], "expected its method to be one of .* \\(got 'dense'\\)"),
    ({'v': ('tcmp', ['--amount', '0.5'])}, ['v'], 'may not set --prune, --amount'),
    ({'v': ('tcmp', [])}, ['tcmp'], r"variant\(s\) \['v'\] not among the methods"),
])
def test_bad_method_variants_are_refused(tmp_path, variants, methods, message):
    with pytest.raises(ValueError, match=message):
        run_sweep('synthetic', None, str(tmp_path / 'o'), models=['stgcn-compact'],
                  methods=methods, amounts=[0.9], folds=[None], variants=variants)
    assert not (tmp_path / 'o').exists()


def test_cli_sweep_names_an_unknown_method_or_a_malformed_variant(tmp_path, capsys):
    base = ['sweep', '--dataset', 'synthetic', '--out', str(tmp_path / 'o'), '--quiet']
    assert main(base + ['--methods', 'tcmp', 'tcmp-x']) == 1
    assert "unknown method(s) ['tcmp-x']" in capsys.readouterr().err
    assert main(base + ['--methods', 'tcmp', '--variant', 'tcmp-x']) == 1
    assert "--variant: variant 'tcmp-x': expected 'LABEL=METHOD ARGS...'" \
        in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


# -- statistics ----------------------------------------------------------------

def test_t_interval_matches_a_hand_computed_value():
    # Differences 1..5: mean 3, s = sqrt(2.5), t(0.975; 4 df) = 2.776445 (table).
    mean, low, high = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    assert low == pytest.approx(3 - half, abs=1e-6) == pytest.approx(1.036757, abs=1e-6)
    assert high == pytest.approx(3 + half, abs=1e-6)
    # 90 %: t(0.95; 4 df) = 2.131847.
    _, low90, _ = t_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.9)
    assert low90 == pytest.approx(3 - 2.131847 * math.sqrt(0.5), abs=1e-6)
    mean, low, high = t_interval([0.7])  # one value: no interval
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match='at least one value'):
        t_interval([])
    with pytest.raises(ValueError, match=r"'confidence' in \(0, 1\) \(got 95\)"):
        t_interval([1.0, 2.0], 95)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [0.1, 0.3, 0.2, 0.5, 0.4, 0.35]
    mean, low, high = bootstrap_interval(values)
    assert mean == pytest.approx(sum(values) / 6)
    assert min(values) <= low < mean < high <= max(values)
    assert bootstrap_interval(values) == (mean, low, high)  # seeded
    assert mean_interval(values, 'bootstrap') == (mean, low, high)
    assert mean_interval(values, 't') == t_interval(values)
    with pytest.raises(ValueError, match="'interval' to be one of \\('t', 'bootstrap'\\)"):
        mean_interval(values, 'normal')


def run(method, amount, fold, seed, acc, **extra):
    return dict(model='m', method=method, amount=amount, fold=fold, seed=seed,
                status='ok', test_accuracy=acc, nominal_sparsity=amount,
                effective_sparsity=amount, dead=0, **extra)


def grid_rows():
    """tcmp, mp and random at 99 % and dense over partly different
    (fold, seed) pairs, a failed mp run, and a lone tcmp run at 90 %."""
    return [
        run('dense', 0.0, 1, 0, 0.9), run('dense', 0.0, 2, 0, 0.8),
        run('dense', 0.0, 3, 0, 1.0),
        run('tcmp', 0.99, 1, 0, 0.8), run('tcmp', 0.99, 2, 0, 0.7),
        run('tcmp', 0.99, 3, 0, 0.9), run('tcmp', 0.99, 1, 1, 0.6),  # mean 0.75
        run('mp', 0.99, 1, 0, 0.5), run('mp', 0.99, 2, 0, 0.6),
        run('mp', 0.99, 4, 0, 0.4),  # mean 0.5
        dict(model='m', method='mp', amount=0.99, fold=3, seed=0, status='failed',
             error='killed by SIGKILL'),
        run('random', 0.99, 1, 0, 0.3), run('random', 0.99, 2, 0, 0.2),  # mean 0.25
        run('tcmp', 0.9, 1, 0, 0.85),
    ]


def by_pair(comparisons):
    return {(c['amount'], c['method'], c['versus']): c for c in comparisons}


def test_compare_pairs_only_the_common_fold_seed_pairs_with_the_best_rival():
    found = by_pair(compare(grid_rows()))
    assert list(found) == [
        (0.9, 'tcmp', 'dense'),
        (0.99, 'mp', 'tcmp'), (0.99, 'mp', 'dense'),
        (0.99, 'random', 'tcmp'), (0.99, 'random', 'dense'),
        (0.99, 'tcmp', 'mp'), (0.99, 'tcmp', 'dense')]
    # tcmp's best rival is mp (mean 0.5 > random's 0.25); the others' is tcmp.
    # Common pairs with mp: (1, 0) and (2, 0): differences 0.3 and 0.1; the
    # failed mp run (3, 0) and the unpaired (1, 1) and (4, 0) are left out.
    c = found[(0.99, 'tcmp', 'mp')]
    assert (c['versus_role'], c['pairs'], c['interval']) == ('best rival', 2, 't')
    assert c['mean_difference'] == pytest.approx(0.2)
    # s = 0.1 * sqrt(2), t(0.975; 1 df) = 12.706205: half-width 1.2706205.
    assert c['low'] == pytest.approx(0.2 - 1.2706205, abs=1e-6)
    assert c['high'] == pytest.approx(0.2 + 1.2706205, abs=1e-6)
    assert found[(0.99, 'mp', 'tcmp')]['mean_difference'] == pytest.approx(-0.2)
    r = found[(0.99, 'random', 'tcmp')]
    assert (r['pairs'], r['low'], r['high']) == (2, pytest.approx(-0.5), pytest.approx(-0.5))
    d = found[(0.99, 'tcmp', 'dense')]  # (1,0), (2,0), (3,0): -0.1 each
    assert (d['versus_role'], d['pairs']) == ('dense', 3)
    assert d['mean_difference'] == pytest.approx(-0.1)
    lone = found[(0.9, 'tcmp', 'dense')]  # no rival at 90 %, one pair
    assert lone['pairs'] == 1 and lone['mean_difference'] == pytest.approx(-0.05)
    assert math.isnan(lone['low']) and math.isnan(lone['high'])


def test_every_pruning_method_is_compared_with_each_narrow_dense_rival():
    rows = [run('dense', 0.0, 1, 0, 0.9), run('dense-w0.36', 0.0, 1, 0, 0.7),
            run('dense-w0.36', 0.0, 2, 0, 0.8), run('dense-w0.1', 0.0, 1, 0, 0.4),
            run('tcmp', 0.99, 1, 0, 0.75), run('tcmp', 0.99, 2, 0, 0.85),
            run('mp', 0.99, 1, 0, 0.5)]
    found = compare(rows)
    assert [(c['method'], c['versus'], c['versus_role']) for c in found] == [
        ('mp', 'tcmp', 'best rival'), ('mp', 'dense', 'dense'),
        ('mp', 'dense-w0.1', 'narrow dense'), ('mp', 'dense-w0.36', 'narrow dense'),
        ('tcmp', 'mp', 'best rival'), ('tcmp', 'dense', 'dense'),
        ('tcmp', 'dense-w0.1', 'narrow dense'), ('tcmp', 'dense-w0.36', 'narrow dense')]
    c = by_pair(found)[(0.99, 'tcmp', 'dense-w0.36')]  # paired over folds 1 and 2
    assert c['pairs'] == 2 and c['mean_difference'] == pytest.approx(0.05)
    assert by_pair(found)[(0.99, 'tcmp', 'dense-w0.1')]['pairs'] == 1
    assert '| m | 99 % | tcmp | dense-w0.36 | 2 | +5.0 |' in comparisons_table(found)


def test_best_rival_ties_go_to_the_first_name():
    rows = [run('b', 0.9, 1, 0, 0.5), run('a', 0.9, 1, 0, 0.5), run('c', 0.9, 1, 0, 0.6)]
    found = by_pair(compare(rows))
    assert set(found) == {(0.9, 'a', 'c'), (0.9, 'b', 'c'), (0.9, 'c', 'a')}


def test_compare_reads_folds_back_from_the_csv(tmp_path):
    """results.csv holds text ('' for no fold): pairing is the same."""
    rows = grid_rows() + [dict(run('tcmp', 0.5, None, 0, 0.9), fold=''),
                          dict(run('mp', 0.5, None, 0, 0.7), fold='')]
    write_results(str(tmp_path), rows)
    back = read_csv(tmp_path / 'results.csv')
    assert compare(back) == compare(rows)
    assert by_pair(compare(back))[(0.5, 'tcmp', 'mp')]['pairs'] == 1


def test_results_markdown_states_n_intervals_and_the_comparisons(tmp_path):
    summary = {(s['method'], s['amount']): s for s in summarize(grid_rows())}
    tcmp = summary[('tcmp', 0.99)]
    assert tcmp['runs'] == 4 and tcmp['acc_mean'] == pytest.approx(0.75)
    # s = 0.129099, t(0.975; 3 df) = 3.182446: [0.544574, 0.955426].
    assert tcmp['acc_low'] == pytest.approx(0.544574, abs=1e-6)
    assert tcmp['acc_high'] == pytest.approx(0.955426, abs=1e-6)
    assert summary[('mp', 0.99)]['runs'] == 3  # the failed run is left out
    assert tcmp['nonzero_params'] is None  # no run records costs

    table = markdown_table(summarize(grid_rows())).splitlines()
    assert table[0] == ('| model | method | pruning | runs | test accuracy (%, mean '
                        '± std) | 95 % interval of the mean | nominal sparsity | effective sparsity | '
                        'dead weights | nonzero params | compacted params | '
                        'compacted MACs |')
    assert '| m | tcmp | 99 % | 4 | 75.0 ± 12.9 | [54.5, 95.5] | 99.00 % | ' \
           '99.00 % | 0 | — | — | — |' in table
    assert '| m | tcmp | 90 % | 1 | 85.0 ± 0.0 | — |' in '\n'.join(table)

    text = comparisons_table(compare(grid_rows())).splitlines()
    assert text[0].startswith('Paired differences of test accuracy (percentage '
                              'points): each method minus the best rival')
    assert text[0].endswith('95 % interval (Student-t).')
    assert text[2] == ('| model | pruning | method | minus | pairs | '
                       'mean difference | 95 % interval |')
    assert '| m | 99 % | tcmp | mp (best rival) | 2 | +20.0 | [-107.1, +147.1] |' in text
    assert '| m | 99 % | mp | dense | 2 | -30.0 | [-157.1, +97.1] |' in text
    assert '| m | 90 % | tcmp | dense | 1 | -5.0 | — |' in text
    assert comparisons_table([]) == ''
    boot = comparisons_table(compare(grid_rows(), interval='bootstrap'))
    assert '95 % interval (percentile bootstrap).' in boot

    write_results(str(tmp_path), grid_rows())
    md = (tmp_path / 'results.md').read_text()
    assert md.index('| m | tcmp | 99 % | 4 |') < md.index('Paired differences') \
        < md.index('Failed runs (1 of 14;')
    saved = {(r['amount'], r['method'], r['versus']): r
             for r in read_csv(tmp_path / 'comparisons.csv')}
    assert saved[('0.99', 'tcmp', 'mp')]['pairs'] == '2'
    assert saved[('0.9', 'tcmp', 'dense')]['low'] == ''  # one pair: no interval
    assert not (tmp_path / 'accuracy_vs_cost.png').exists()  # no costs recorded


def write_metrics(out, combo, **metrics):
    run_dir = out / 'runs' / combo.name
    run_dir.mkdir(parents=True)
    (run_dir / 'metrics.json').write_text(json.dumps(metrics))


def test_collect_reads_metrics_with_and_without_costs(tmp_path):
    old, new = Combination('m', 'dense', 0.0, 1, 0), Combination('m', 'tcmp', 0.99, 1, 0)
    # Written before costs were recorded: no `cost`, no connectivity (dense).
    write_metrics(tmp_path, old, test_accuracy=0.9, epochs=3, connectivity=None)
    cost = dict(params=1000, nonzero_params=40, macs=50000, compact_params=120,
                compact_macs=4000)
    write_metrics(tmp_path, new, test_accuracy=0.7, epochs=3, cost=cost,
                  connectivity=dict(nominal_sparsity=0.99, effective_sparsity=0.99,
                                    weights=900, kept=9, live=9, dead=0))
    rows = collect(str(tmp_path), [old, new])
    assert [rows[0][c] for c in COST_COLUMNS] == [''] * 5
    assert [rows[1][c] for c in COST_COLUMNS] == [1000, 40, 50000, 120, 4000]
    # A disconnected model has no compacted size.
    gone = Combination('m', 'mp', 0.99, 1, 0)
    write_metrics(tmp_path, gone, test_accuracy=0.1, epochs=3,
                  cost=dict(cost, compact_params=None, compact_macs=None),
                  connectivity=dict(nominal_sparsity=0.99, effective_sparsity=1.0,
                                    weights=900, kept=9, live=0, dead=9))
    rows = collect(str(tmp_path), [old, new, gone])
    assert (rows[2]['nonzero_params'], rows[2]['compact_macs']) == (40, '')

    write_results(str(tmp_path), rows)
    md = (tmp_path / 'results.md').read_text()
    assert '| m | dense | — | 1 | 90.0 ± 0.0 | — | 0.00 % | 0.00 % | 0 | — | — | — |' in md
    assert '| m | tcmp | 99 % | 1 | 70.0 ± 0.0 | — | 99.00 % | 99.00 % | 0 | 40 | ' \
           '120 | 4,000 |' in md
    assert '| m | 99 % | tcmp | mp (best rival) | 1 | +60.0 | — |' in md
    assert (tmp_path / 'accuracy_vs_cost.png').exists()


def test_an_older_results_csv_still_summarises(tmp_path):
    """A results.csv written before the cost columns (and before status)."""
    old_columns = ('model', 'method', 'amount', 'fold', 'seed', 'test_accuracy',
                   'nominal_sparsity', 'effective_sparsity', 'weights', 'kept',
                   'live', 'dead', 'epochs', 'train_time_s')
    path = tmp_path / 'results.csv'
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=old_columns, extrasaction='ignore')
        writer.writeheader()
        writer.writerows([r for r in grid_rows() if r['status'] == 'ok'])
    rows = read_csv(path)
    assert [s['runs'] for s in summarize(rows)] == \
        [s['runs'] for s in summarize(grid_rows())]
    assert '| m | tcmp | 99 % | 4 | 75.0 ± 12.9 | [54.5, 95.5] |' in \
        markdown_table(summarize(rows))
    assert by_pair(compare(rows))[(0.99, 'tcmp', 'mp')]['pairs'] == 2


def test_cli_sweep_prints_the_comparisons_after_the_results(tmp_path, capsys):
    """Finished runs are not trained again: a sweep over written metrics only
    summarises them."""
    out = tmp_path / 'sweep'
    accuracy = {'dense': 0.9, 'mp': 0.5, 'tcmp': 0.7}
    for combo in [Combination('stgcn-compact', method, amount, fold, 0)
                  for method, amount in (('dense', 0.0), ('mp', 0.99), ('tcmp', 0.99))
                  for fold in (1, 2, 3)]:
        write_metrics(out, combo, test_accuracy=accuracy[combo.method] + combo.fold / 100,
                      epochs=1)
    base = ['sweep', '--dataset', 'synthetic', '--out', str(out), '--methods',
            'dense', 'mp', 'tcmp', '--folds', '1', '2', '3', '--quiet']
    assert main(base + ['--interval', 'bootstrap']) == 0
    printed = capsys.readouterr().out
    assert printed.index('| stgcn-compact | tcmp | 99 % | 3 | 72.0 ± 1.0 |') < \
        printed.index('95 % interval (percentile bootstrap).') < \
        printed.index('| stgcn-compact | 99 % | tcmp | mp (best rival) | 3 | +20.0 | '
                      '[+20.0, +20.0] |')
    assert 'results.csv, comparisons.csv, results.md' in printed
    assert main(base) == 0  # the t interval by default
    assert '| stgcn-compact | 99 % | mp | dense | 3 | -40.0 | [-40.0, -40.0] |' in \
        capsys.readouterr().out
    with pytest.raises(ValueError, match="expected 'interval' to be one of"):
        run_sweep('synthetic', None, str(tmp_path / 'other'), models=['stgcn-compact'],
                  methods=['dense'], amounts=[0.9], folds=[None], interval='normal')
    assert not (tmp_path / 'other').exists()
