"""Plots render to PNG and draw what the connectivity analysis says."""
import copy
import csv
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb, to_rgba_array
from torch_geometric.data import Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn.models import STGCN, build_model
from tcmp_pyg.pruning import TCMP, connectivity, magnitude_prune
from tcmp_pyg.pruning.connectivity import flow_layers
from tcmp_pyg.visualization import (DEAD_COLOR, LIVE_COLOR, RESULT_COLUMNS,
                                    aggregate_costs, aggregate_results,
                                    animate_sequence, plot_accuracy_vs_cost,
                                    format_rate,
                                    plot_accuracy_vs_rate, plot_layer_density,
                                    plot_mp_vs_tcmp, plot_skeleton,
                                    plot_subnetwork, rest_pose)

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def assert_png(path):
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    return found[0] if found else None


def rgb(color):
    return tuple(np.round(to_rgb(color), 3))


def rgb_rows(colors):
    return [tuple(np.round(c[:3], 3)) for c in np.atleast_2d(colors)]


def has_color(artist, color):
    """Whether any edge, face, line or marker colour of ``artist`` is ``color``."""
    target = rgb(color)
    for getter in ('get_color', 'get_edgecolor', 'get_facecolor',
                   'get_markerfacecolor', 'get_markeredgecolor'):
        if hasattr(artist, getter):
            try:
                rows = to_rgba_array(getattr(artist, getter)())
            except ValueError:
                continue
            if target in rgb_rows(rows):
                return True
    return False


def drawn_artists(ax):
    return list(ax.collections) + list(ax.lines) + list(ax.patches)


def keep(module, i, o, n):
    """Keeps ``n`` kernel entries between input channel i and output o."""
    mask = module.weight_mask.clone()
    view = mask.movedim((module.in_axis, module.out_axis), (0, 1))
    pair = torch.zeros(view[i, o].numel())
    pair[:n] = 1
    view[i, o] = pair.view(view[i, o].shape)
    module.set_mask(mask)


@pytest.fixture
def hand_pruned():
    """A 3-block ST-GCN with one live path (6 weights) and 2 dead pairs (7)."""
    torch.manual_seed(0)
    model = STGCN(3, 5, 'sbu', channels=(4, 6, 6))
    _, layers = flow_layers(model)
    for layer in layers:
        layer.module.set_mask(torch.zeros_like(layer.module.weight))
    m = {layer.name: layer.module for layer in layers}
    keep(m['blocks.0.gcn'], 0, 1, 3)   # 3 partitions
    keep(m['blocks.0.tcn'], 1, 2, 1)
    keep(m['blocks.1.proj'], 2, 3, 1)  # then identities to blocks.2.out
    keep(m['fc'], 3, 4, 1)
    keep(m['blocks.0.tcn'], 2, 3, 5)   # dead: channel 2 has no input
    keep(m['blocks.2.gcn'], 3, 0, 2)   # dead: channel 0 reaches no output
    return model


@pytest.fixture(scope='module')
def compact_pair():
    """Compact ST-GCN on 'sbu', random init, MP and TCMP one-shot at 99 %."""
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, 8, 'sbu')
    mp = copy.deepcopy(model)
    magnitude_prune(mp, 0.99)
    tcmp = copy.deepcopy(model)
    pruner = TCMP(tcmp, 0.99)
    pruner.update(pruner.budget, final=True)
    return mp, tcmp


def test_import_does_not_load_matplotlib():
    code = ('import sys, tcmp_pyg, tcmp_pyg.visualization; '
            'print("matplotlib" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == 'False'


def test_figures_are_not_registered_in_pyplot(hand_pruned):
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    plot_subnetwork(hand_pruned)
    plot_layer_density(hand_pruned)
    plot_skeleton('sbu')
    assert plt.get_fignums() == before


def test_format_rate():
    assert format_rate(0.99) == '99 %'
    assert format_rate(0.999) == '99.9 %'
    assert format_rate(0.9995) == '99.95 %'
    assert format_rate(0.990001) == '99 %'
    assert format_rate(0.0) == '0 %'


def test_subnetwork_draws_live_dead_and_identity_paths(hand_pruned, tmp_path):
    report = connectivity(hand_pruned)
    assert (report.kept, report.live, report.dead) == (13, 6, 7)

    fig = plot_subnetwork(hand_pruned, path=tmp_path / 'sub.png')
    assert_png(tmp_path / 'sub.png')
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        [n.name for n in report.flow.nodes]

    # One line per kept channel pair, width by its number of kept weights.
    live = by_gid(ax, 'live_connections')
    dead = by_gid(ax, 'dead_connections')
    assert len(live.get_segments()) == 4 and len(dead.get_segments()) == 2
    assert set(rgb_rows(live.get_colors())) == {rgb(LIVE_COLOR)}
    assert set(rgb_rows(dead.get_colors())) == {rgb(DEAD_COLOR)}
    w_live = np.sort(live.get_linewidths())
    assert w_live[0] == w_live[2] < w_live[3]  # counts 1, 1, 1 and 3
    w_dead = np.sort(dead.get_linewidths())
    assert w_live[0] < w_dead[0] < w_live[3] < w_dead[1]  # counts 2 and 5

    # Identity edges of the flow, one dashed grey line per channel pair.
    identity = by_gid(ax, 'identity_connections')
    n_identity = sum(e.src_index.numel() for e in report.flow.edges
                     if e.module is None)
    assert len(identity.get_segments()) == n_identity == 24

    # Channels: 7 live (filled); channels 2 of blocks.0.gcn and 3 of
    # blocks.0.tcn hold dead weights and no input reaches them (hollow red);
    # channel 0 of blocks.2.gcn holds one and reaches no output (red cross).
    filled = by_gid(ax, 'live_channels')
    assert len(filled.get_offsets()) == 7
    hollow = by_gid(ax, 'inaccessible_channels')
    red_hollow = np.asarray(hollow.get_offsets())[
        [c == rgb(DEAD_COLOR)
         for c in rgb_rows(hollow.get_edgecolor())]]
    names = [n.name for n in report.flow.nodes]
    assert sorted(names[int(x)] for x, _ in red_hollow) == \
        ['blocks.0.gcn', 'blocks.0.tcn']
    cross = by_gid(ax, 'not_co_accessible_channels')
    red_cross = np.asarray(cross.get_offsets())[
        [c == rgb(DEAD_COLOR)
         for c in rgb_rows(cross.get_facecolor())]]
    assert [names[int(x)] for x, _ in red_cross] == ['blocks.2.gcn']

    total = sum(n.size for n in report.flow.nodes)
    note = ax.xaxis.label.get_text()
    assert note.startswith(f'all {total} channels and 6 kept connections '
                           f'(4 live) shown')
    assert (report.reachable_outputs, report.num_outputs) == (1, 5)
    assert ax.get_title() == (f'STGCN, {format_rate(report.nominal_sparsity)} '
                              f'pruned: 53.8 % of kept weights dead, 1 of 5 '
                              f'outputs reachable')
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert 'dead connection' in labels and 'identity / residual' in labels
    with pytest.raises(ValueError, match="'max_channels' to be a positive"):
        plot_subnetwork(hand_pruned, max_channels=0)


def test_subnetwork_of_mp_is_dead_coloured(compact_pair, tmp_path):
    mp, _ = compact_pair
    report = connectivity(mp)
    assert report.live == 0 and report.dead == report.kept > 0
    fig = plot_subnetwork(mp, max_channels=64, max_connections=1000,
                          path=tmp_path / 'mp.png')
    assert_png(tmp_path / 'mp.png')
    (ax,) = fig.axes
    assert by_gid(ax, 'live_connections') is None
    dead = by_gid(ax, 'dead_connections')
    pairs = sum(int(layer.module.channel_connections().sum())
                for layer in flow_layers(mp)[1])
    assert len(dead.get_segments()) == pairs
    assert set(rgb_rows(dead.get_colors())) == {rgb(DEAD_COLOR)}
    assert ax.get_title().endswith(f'all {report.kept:,} kept weights dead')


def test_subnetwork_of_tcmp_has_nothing_dead_coloured(compact_pair, tmp_path):
    _, tcmp = compact_pair
    report = connectivity(tcmp)
    assert report.is_consistent and report.live > 0
    fig = plot_subnetwork(tcmp, max_channels=64, max_connections=1000,
                          path=tmp_path / 'tcmp.png')
    assert_png(tmp_path / 'tcmp.png')
    (ax,) = fig.axes
    live = by_gid(ax, 'live_connections')
    pairs = sum(int(layer.module.channel_connections().sum())
                for layer in flow_layers(tcmp)[1])
    assert len(live.get_segments()) == pairs
    legend = ax.get_legend()
    artists = drawn_artists(ax) + list(legend.legend_handles)
    assert artists and not any(has_color(a, DEAD_COLOR) for a in artists)
    assert 'dead' not in ' '.join(t.get_text() for t in legend.get_texts())
    assert ax.get_title().endswith('99 % pruned: 0 dead')


def test_subnetwork_of_large_model_is_subsampled_and_says_so(tmp_path):
    torch.manual_seed(0)
    model = build_model('stgcn', 3, 60, 'ntu')  # 10 blocks, 3.1 M weights
    magnitude_prune(model, 0.9)
    start = time.perf_counter()
    fig = plot_subnetwork(model, max_channels=48, max_connections=300,
                          path=tmp_path / 'big.png')
    elapsed = time.perf_counter() - start
    assert_png(tmp_path / 'big.png')
    assert elapsed < 30  # a few seconds; generous for slow machines
    (ax,) = fig.axes
    report = connectivity(model)
    total = sum(n.size for n in report.flow.nodes)
    note = ax.xaxis.label.get_text()
    assert note.startswith('showing ') and f'of {total:,} channels' in note
    assert 'at most 48 per column' in note and 'at most 300 lines per layer' in note

    dots = np.concatenate([np.asarray(c.get_offsets()) for c in ax.collections
                           if c.get_gid() and c.get_gid().endswith('channels')])
    per_column = np.bincount(dots[:, 0].round().astype(int))
    sizes = [n.size for n in report.flow.nodes]
    assert (per_column == np.minimum(sizes, 48)).all()
    n_lines = sum(len(by_gid(ax, g).get_segments())
                  for g in ('live_connections', 'dead_connections'))
    assert 0 < n_lines <= 300 * len(report.layers)
    assert report.dead > 0 and has_color(by_gid(ax, 'dead_connections'), DEAD_COLOR)


def test_mp_vs_tcmp_titles_give_dead_fractions(compact_pair, tmp_path):
    mp, tcmp = compact_pair
    fig = plot_mp_vs_tcmp(mp, tcmp, path=tmp_path / 'pair.png')
    assert_png(tmp_path / 'pair.png')
    assert len(fig.axes) == 2
    kept = connectivity(mp).kept
    assert [ax.get_title() for ax in fig.axes] == [
        f'MP 99 %: all {kept:,} kept weights dead', 'TCMP 99 %: 0 dead']
    assert by_gid(fig.axes[0], 'dead_connections') is not None
    assert by_gid(fig.axes[1], 'dead_connections') is None
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert 'live connection' in labels and 'dead connection' in labels


def test_layer_density_bars_match_report(hand_pruned, tmp_path):
    report = connectivity(hand_pruned)
    fig = plot_layer_density(report, path=tmp_path / 'density.png')
    assert_png(tmp_path / 'density.png')
    (ax,) = fig.axes
    kept, live, dead = ax.containers
    assert [b.get_height() for b in kept] == [r.kept for r in report.layers]
    assert [b.get_height() for b in live] == [r.live for r in report.layers]
    assert [b.get_height() for b in dead] == [r.dead for r in report.layers]
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        [r.name for r in report.layers]
    assert ax.get_yscale() == 'log'
    # A model works too, drawn into given axes.
    from matplotlib.figure import Figure
    ax = Figure().add_subplot()
    assert plot_layer_density(hand_pruned, log=False, ax=ax) is ax.figure
    assert ax.get_yscale() == 'linear'
    assert [b.get_height() for b in ax.containers[1]] == \
        [r.live for r in report.layers]


def test_rest_pose_is_a_radial_tree():
    layout = get_layout('sbu')
    pose = rest_pose(layout)
    assert pose.shape == (15, 2)
    # Radius = bones from the centre; the head up, the feet down.
    np.testing.assert_allclose(np.linalg.norm(pose, axis=1),
                               layout.hop_distance().numpy(), atol=1e-9)
    names = layout.joint_names
    assert pose[names.index('head'), 1] > 0
    assert pose[names.index('left_foot'), 1] < 0 > pose[names.index('right_foot'), 1]
    assert rest_pose('fpha').shape == (21, 2)  # no head: still a tree


def test_plot_skeleton_of_a_layout(tmp_path):
    layout = get_layout('ntu')
    fig = plot_skeleton('ntu', path=tmp_path / 'ntu.png')
    assert_png(tmp_path / 'ntu.png')
    (ax,) = fig.axes
    (bones,) = [c for c in ax.collections if c.get_gid() == 'bones']
    assert len(bones.get_segments()) == len(layout.bones)
    texts = {t.get_text() for t in ax.texts}
    assert {f'{v} {n}' for v, n in enumerate(layout.joint_names)} <= texts
    assert '2 bodies' in ax.get_title()
    assert not plot_skeleton('ntu', show_names=False).axes[0].texts


def sequence(layout, T=5, C=3):
    """[M*V, T, C]: body 0 the rest pose moving right, other bodies absent."""
    layout = get_layout(layout)
    V = layout.num_joints
    x = torch.zeros(layout.num_nodes, T, C)
    pose = torch.as_tensor(rest_pose(layout), dtype=torch.float32)
    for t in range(T):
        x[:V, t, :2] = pose + torch.tensor([0.5 * t, 0.0])
    if C == 3:
        x[:V, :, 2] = 1.0
    return x


def test_plot_skeleton_of_a_frame(tmp_path):
    layout = get_layout('sbu')
    x = sequence('sbu')
    fig = plot_skeleton(x, layout='sbu', frame=3, path=tmp_path / 'frame.png')
    assert_png(tmp_path / 'frame.png')
    ax = fig.axes[0]
    assert ax.get_title() == "'sbu' frame 3 (of 5)"
    bones = [c for c in ax.collections if c.get_gid() == 'bones']
    assert len(bones) == 1  # body 1 is all zeros: left out
    a, b = layout.bones[0]
    np.testing.assert_allclose(bones[0].get_segments()[0],
                               x[[a, b], 3, :2].numpy(), atol=1e-6)
    # A PyG graph works too; an absent body is still drawn when asked for.
    fig = plot_skeleton(Data(x=x), layout='sbu', body=1)
    assert len([c for c in fig.axes[0].collections if c.get_gid() == 'bones']) == 1

    fig = plot_skeleton(x, layout='sbu', projection='3d', path=tmp_path / '3d.png')
    assert_png(tmp_path / '3d.png')
    assert fig.axes[0].name == '3d'


def test_plot_skeleton_errors():
    x = sequence('sbu', C=2)
    with pytest.raises(ValueError, match="pass layout="):
        plot_skeleton(x)
    with pytest.raises(ValueError, match="needs 3 coordinates"):
        plot_skeleton(x, layout='sbu', projection='3d')
    with pytest.raises(ValueError, match=r"'frame' in 0\.\.4"):
        plot_skeleton(x, layout='sbu', frame=5)
    with pytest.raises(ValueError, match=r"\[2 \* 15, T, 2 or 3\]"):
        plot_skeleton(x[:20], layout='sbu')
    with pytest.raises(ValueError, match="'body' in 0..1"):
        plot_skeleton(x, layout='sbu', body=2)
    with pytest.raises(ValueError, match="'2d' or '3d'"):
        plot_skeleton('sbu', projection='4d')


def test_animate_sequence_writes_a_gif(tmp_path):
    from PIL import Image
    path = tmp_path / 'seq.gif'
    fig = animate_sequence(sequence('sbu', T=4), 'sbu', path, fps=5)
    assert path.read_bytes()[:4] == b'GIF8'
    with Image.open(path) as gif:
        assert gif.n_frames == 4
    assert fig.axes[0].get_title() == "'sbu' frame 3 (of 4)"


def test_animate_sequence_checks_the_writer(tmp_path):
    from matplotlib import animation
    with pytest.raises(ValueError, match="'.gif' or '.mp4'"):
        animate_sequence(sequence('sbu', T=2), 'sbu', tmp_path / 'seq.avi')
    if not animation.writers.is_available('ffmpeg'):
        with pytest.raises(RuntimeError, match='needs ffmpeg'):
            animate_sequence(sequence('sbu', T=2), 'sbu', tmp_path / 'seq.mp4')


def write_results(path, rows):
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(RESULT_COLUMNS), restval='')
        writer.writeheader()
        writer.writerows(rows)


def sweep_rows(model='stgcn-compact'):
    """3 folds per (method, amount); accuracy = base - fold spread."""
    rows = []
    for fold, delta in enumerate((-0.02, 0.0, 0.04)):
        rows.append(dict(model=model, method='dense', amount=0.0, fold=fold,
                         seed=0, test_accuracy=0.9 + delta))
        for method, base in (('mp', 0.6), ('tcmp', 0.8)):
            for amount in (0.9, 0.99, 0.999):
                rows.append(dict(model=model, method=method, amount=amount,
                                 fold=fold, seed=0,
                                 test_accuracy=base - amount / 10 + delta))
    return rows


def test_accuracy_vs_rate_from_csv(tmp_path):
    rows = sweep_rows()
    rows.append(dict(model='stgcn-compact', method='mp', amount=0.99, fold=3,
                     seed=0, test_accuracy=''))  # a failed run: left out
    write_results(tmp_path / 'results.csv', rows)
    fig = plot_accuracy_vs_rate(tmp_path / 'results.csv',
                                path=tmp_path / 'acc.png')
    assert_png(tmp_path / 'acc.png')
    (ax,) = fig.axes
    assert ax.get_xscale() == 'log'
    lo, hi = ax.get_xlim()
    assert lo > hi  # reversed: more pruning to the right
    ticks = dict(zip(np.round(ax.get_xticks(), 6),
                     [t.get_text() for t in ax.get_xticklabels()]))
    assert ticks == {0.1: '90 %', 0.01: '99 %', 0.001: '99.9 %'}

    std = np.std([-0.02, 0.0, 0.04], ddof=1)
    curves = {c.get_label(): c for c in ax.containers}
    assert set(curves) == {'MP', 'TCMP'}
    for label, base in (('MP', 0.6), ('TCMP', 0.8)):
        line, _, (bars,) = curves[label]
        x, y = line.get_data()
        np.testing.assert_allclose(x, [0.1, 0.01, 0.001])
        np.testing.assert_allclose(y, base - np.array([0.9, 0.99, 0.999]) / 10
                                   + 0.02 / 3)
        half = [abs(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()]
        np.testing.assert_allclose(half, std)
    dense = [line for line in ax.lines if line.get_label().startswith('dense')]
    np.testing.assert_allclose(dense[0].get_ydata(), 0.9 + 0.02 / 3)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][1:] == ['MP', 'TCMP']


def test_accuracy_vs_rate_inputs_and_errors(tmp_path):
    rows = sweep_rows('a') + sweep_rows('b')
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    assert aggregate_results(rows) == aggregate_results(columns)
    mean, std, runs = aggregate_results(rows)[('a', 'tcmp', 0.99)]
    assert runs == 3 and mean == pytest.approx(0.8 - 0.099 + 0.02 / 3)
    assert len(plot_accuracy_vs_rate(rows).axes) == 2  # one per model
    with pytest.raises(ValueError, match="lack the columns \\['test_accuracy'\\]"):
        aggregate_results([dict(model='a', method='mp', amount=0.9)])
    with pytest.raises(ValueError, match="pruning fraction in \\[0, 1\\)"):
        aggregate_results([dict(model='a', method='mp', amount=99,
                                test_accuracy=0.5)])


def cost_rows():
    """sweep_rows with costs: nonzero parameters and compacted MACs shrink
    with the rate (tcmp compacts better than mp); a run without costs."""
    rows = []
    for r in sweep_rows():
        kept = 1.0 - r['amount']
        factor = 1.0 if r['method'] == 'tcmp' else 2.0
        rows.append(dict(r, nonzero_params=1000 + 100000 * kept + r['fold'],
                         compact_macs=1e6 * kept * factor if r['amount'] else 4e6))
    rows.append(dict(model='stgcn-compact', method='mp', amount=0.9, fold=9, seed=0,
                     test_accuracy=0.0))  # trained before costs: left out
    return rows


def test_accuracy_vs_cost_from_csv(tmp_path):
    path = tmp_path / 'results.csv'
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(RESULT_COLUMNS)
                                + ['nonzero_params', 'compact_macs'], restval='')
        writer.writeheader()
        writer.writerows(cost_rows())
    stats = aggregate_costs(path, 'compact_macs')
    assert stats[('stgcn-compact', 'mp', 0.9)] == pytest.approx(
        (2e5, 0.6 - 0.09 + 0.02 / 3, np.std([-0.02, 0.0, 0.04], ddof=1), 3))
    fig = plot_accuracy_vs_cost(path, path=tmp_path / 'cost.png')
    assert_png(tmp_path / 'cost.png')
    params_ax, macs_ax = fig.axes
    assert params_ax.get_xscale() == macs_ax.get_xscale() == 'log'
    assert 'nonzero parameters' in params_ax.get_xlabel()
    assert 'compacted model' in macs_ax.get_xlabel()
    curves = {c.get_label(): c for c in macs_ax.containers}
    assert set(curves) == {'MP', 'TCMP', 'dense (no pruning)'}
    x, y = curves['TCMP'][0].get_data()
    np.testing.assert_allclose(x, [1e3, 1e4, 1e5])  # by cost: 99.9, 99, 90 %
    np.testing.assert_allclose(y, 0.8 - np.array([0.999, 0.99, 0.9]) / 10 + 0.02 / 3)
    x, _ = curves['dense (no pruning)'][0].get_data()
    np.testing.assert_allclose(x, [4e6])
    x, _ = {c.get_label(): c for c in params_ax.containers}['MP'][0].get_data()
    np.testing.assert_allclose(x, [1000 + 100 + 1, 1000 + 1000 + 1, 1000 + 10000 + 1])


def test_accuracy_vs_cost_draws_the_narrow_dense_rivals_as_one_line():
    rows = cost_rows() + [
        dict(model='stgcn-compact', method=f'dense-w{w}', amount=0.0, fold=1, seed=0,
             test_accuracy=acc, nonzero_params=params, compact_macs=macs)
        for w, acc, params, macs in [(0.5, 0.7, 3e4, 1e6), (0.1, 0.4, 2e3, 5e4)]]
    macs_ax = plot_accuracy_vs_cost(rows).axes[1]
    curves = {c.get_label(): c for c in macs_ax.containers}
    assert set(curves) == {'MP', 'TCMP', 'dense (no pruning)',
                           'dense, narrower (from scratch)'}
    x, y = curves['dense, narrower (from scratch)'][0].get_data()
    np.testing.assert_allclose(x, [5e4, 1e6, 4e6])  # widths 0.1, 0.5 and 1
    np.testing.assert_allclose(y[:2], [0.4, 0.7])


def test_accuracy_vs_cost_without_costs():
    with pytest.raises(ValueError, match='no run with a test accuracy and costs'):
        plot_accuracy_vs_cost(sweep_rows())
    rows = cost_rows() + [dict(r, model='other') for r in cost_rows()]
    assert len(plot_accuracy_vs_cost(rows).axes) == 4  # two per model
