"""Small models, batches and a brute-force neuron-graph reachability."""
from collections import deque

import torch
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import STGCN, AttentionGCN, prunable_weights
from tcmp_pyg.pruning import connectivity


def small_stgcn(channels=(4, 6, 6), seed=0, **kwargs):
    torch.manual_seed(seed)
    return STGCN(3, 5, 'sbu', channels=channels, **kwargs)


def small_attention(seed=0):
    torch.manual_seed(seed)
    return AttentionGCN(3, 5, 'sbu', num_frames=6, heads=2, head_channels=3,
                        hidden_channels=7)


def shrink_classifier(model, factor=1e-3):
    """Scales the weights of the layer feeding the output down, so global
    magnitude ranks the whole classifier last (it empties it first)."""
    from tcmp_pyg.pruning.connectivity import flow_layers
    flow, layers = flow_layers(model)
    (last,) = [fl for fl in layers if fl.edge.dst == flow.output]
    with torch.no_grad():
        last.module.weight.mul_(factor)
    return model


def batch(layout='sbu', B=3, T=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    layout = get_layout(layout)
    return Batch.from_data_list([
        Data(x=torch.randn(layout.num_nodes, T, 3, generator=gen),
             edge_index=layout.edge_index()) for _ in range(B)])


def random_masks(model, density, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _, module in prunable_weights(model):
        module.set_mask(torch.rand(module.weight.shape, generator=gen) < density)


def randomize_norms(model, seed=0):
    """Non-trivial BatchNorm statistics and shifts (constants on every channel)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.bias.data.normal_(0, 0.5, generator=gen)


def brute_force(model):
    """Accessible / co-accessible (node, channel) pairs of the explicit neuron
    graph, by BFS, and the number of live entries per layer."""
    flow = model.channel_flow()
    succ, pred = {}, {}

    def link(a, b):
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)

    entries = []
    for e in flow.edges:
        if e.module is None:
            for a, b in zip(e.src_index.tolist(), e.dst_index.tolist()):
                link((e.src, a), (e.dst, b))
            continue
        mod = e.module
        mask = mod.weight_mask
        kept = []
        for idx in (mask != 0).nonzero().tolist():
            i, o = idx[mod.in_axis], idx[mod.out_axis]
            link((e.src, i), (e.dst, o))
            kept.append((i, o))
        entries.append((e, kept))

    def bfs(starts, nbrs):
        seen = set(starts)
        queue = deque(starts)
        while queue:
            v = queue.popleft()
            for u in nbrs.get(v, ()):
                if u not in seen:
                    seen.add(u)
                    queue.append(u)
        return seen

    acc = bfs([(0, c) for c in range(flow.nodes[0].size)], succ)
    co = bfs([(flow.output, c) for c in range(flow.nodes[flow.output].size)], pred)
    live = [sum((e.src, i) in acc and (e.dst, o) in co for i, o in kept)
            for e, kept in entries]
    return acc, co, live


def coverage_case(channels, frac, tiny_classifier, seed):
    """A small ST-GCN (its classifier shrunk if asked) and a budget between
    the coverage minimum and all weights but one: (model, total, budget)."""
    from tcmp_pyg.nn import prunable_weights
    from tcmp_pyg.pruning import coverage_weights
    model = small_stgcn(tuple(channels), seed=seed)
    if tiny_classifier:
        shrink_classifier(model)
    total = sum(m.weight.numel() for _, m in prunable_weights(model))
    low = coverage_weights(model)
    return model, total, int(low + frac * (total - 1 - low))


def sgd_step(model, data, pruner, opt):
    """One optimiser step on a toy loss (the squared logits) plus the
    pruner's penalty; returns the penalty (None when it has none)."""
    loss = model(data).square().mean()
    penalty = pruner.penalty()
    if penalty is not None:
        loss = loss + penalty
    opt.zero_grad()
    loss.backward()
    opt.step()
    return penalty


def train_checked(model, pruner, steps, data, mode='hard'):
    """A short SGD run under ``pruner`` that checks, at every mask update, a
    consistent selection covering every output with exactly the scheduled
    budget live (and, in relaxed mode, a differentiable penalty inside the
    schedule); returns how many updates it saw."""
    pruner.setup(steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    seen = 0
    for step in range(steps):
        before = pruner.updates
        pruner.step(step)
        if pruner.updates > before:
            seen += 1
            report = connectivity(model)
            assert report.is_consistent and report.covers_outputs
            assert report.live == report.kept == pruner.kept_at(step)
        penalty = sgd_step(model, data, pruner, opt)
        if mode == 'relaxed' and pruner.start_step <= step < pruner.end_step:
            assert penalty is not None and penalty.requires_grad
    pruner.finalize()
    return seen
