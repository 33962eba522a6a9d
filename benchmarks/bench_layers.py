"""Forward+backward time of the PyG STGCN (sparse and scatter paths) against a
dense einsum ST-GCN on [N, C, T, V] (as pyskl writes it), same weights, measured
side by side in one run; then training throughput of the compact preset; then
AttentionGCN with its MessagePassing propagation (fused and message by message)
against the plain einsum swapped into the same model.

    python benchmarks/bench_layers.py [--threads 2] [--repeats 5]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from tcmp_pyg.layouts import get_layout
from tcmp_pyg.nn import STGCN, AttentionGCN, build_model


def dense_adjacency(model: STGCN) -> torch.Tensor:
    """[K, V, V] (target, source) of one body, from the layer's own partition."""
    conv = model.blocks[0].gcn
    layout = model.layout
    V = layout.num_joints
    g = conv._build_graph(layout.edge_index(), layout.num_nodes)
    K = model.partitions
    A = torch.zeros(K, V, V)
    src, row = g.index
    first = src < V  # the first body; the others repeat it
    A[row[first] % K, row[first] // K, src[first]] = g.norm[first]
    return A


def dense_forward(model: STGCN, A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x: [B, M, V, T, C] -> logits, bodies folded into the batch (pyskl)."""
    B, M, V, T, C = x.shape
    h = x.permute(0, 1, 2, 4, 3).reshape(B, M * V * C, T)
    h = model.data_bn(h).view(B * M, V, C, T).permute(0, 2, 3, 1)  # N, C, T, V
    for blk in model.blocks:
        K, ci, co = blk.gcn.weight.shape
        w = (blk.gcn.weight * blk.gcn.weight_mask).permute(0, 2, 1).reshape(K * co, ci, 1, 1)
        g = F.conv2d(h, w).view(h.size(0), K, co, h.size(2), V)
        g = torch.einsum('nkctv,kwv->nctw', g, A) + blk.gcn.bias.view(1, -1, 1, 1)
        g = F.relu(F.batch_norm(g, blk.bn1.running_mean, blk.bn1.running_var,
                                blk.bn1.weight, blk.bn1.bias, True))
        tw = (blk.tcn.weight * blk.tcn.weight_mask).unsqueeze(-1)
        t = F.conv2d(g, tw, blk.tcn.bias, stride=(blk.stride, 1), padding=(4, 0))
        t = F.batch_norm(t, blk.bn2.running_mean, blk.bn2.running_var,
                         blk.bn2.weight, blk.bn2.bias, True)
        if blk.identity:
            t = t + h
        elif blk.proj is not None:
            pw = (blk.proj.weight * blk.proj.weight_mask).unsqueeze(-1)
            r = F.conv2d(h, pw, blk.proj.bias, stride=(blk.stride, 1))
            t = t + F.batch_norm(r, blk.proj_bn.running_mean, blk.proj_bn.running_var,
                                 blk.proj_bn.weight, blk.proj_bn.bias, True)
        h = F.relu(t)
    h = h.mean(dim=(2, 3)).view(B, M, -1).mean(1)
    return F.linear(h, model.fc.weight, model.fc.bias)


class EinsumPropagation(torch.nn.Module):
    """The attention product as the model computed it before it became a
    MessagePassing layer: x [B * V, H, C], alpha [H, V, V]."""
    def __init__(self, num_nodes: int, heads: int) -> None:
        super().__init__()
        self.num_nodes, self.heads = num_nodes, heads

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        N, H, C = x.shape
        V = self.num_nodes
        return torch.einsum('hij,bjhc->bihc', alpha,
                            x.view(N // V, V, H, C)).reshape(N, H, C)


def timed(fn, repeats):
    fn()  # warm-up (graph cache, allocator)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--frames', type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    layout = get_layout('ntu')
    B, T = args.batch, args.frames
    x = torch.randn(B, layout.num_bodies, layout.num_joints, T, 3)
    batch = Batch.from_data_list([
        Data(x=x[b].reshape(layout.num_nodes, T, 3), edge_index=layout.edge_index())
        for b in range(B)])

    sparse = STGCN(3, 60, layout)
    scatter = STGCN(3, 60, layout, sparse=False)
    scatter.load_state_dict(sparse.state_dict())
    A = dense_adjacency(sparse)

    with torch.no_grad():
        diff = (sparse(batch) - dense_forward(sparse, A, x)).abs().max().item()
    print(f'max |PyG - dense| on logits: {diff:.2e}')

    def step_pyg(model):
        model.zero_grad(set_to_none=True)
        model(batch).square().mean().backward()

    def step_dense():
        sparse.zero_grad(set_to_none=True)
        dense_forward(sparse, A, x).square().mean().backward()

    t_dense = timed(step_dense, args.repeats)
    t_sparse = timed(lambda: step_pyg(sparse), args.repeats)
    t_scatter = timed(lambda: step_pyg(scatter), args.repeats)
    print(f'STGCN (10 blocks, NTU, batch {B}, T={T}, {args.threads} threads), '
          f'forward+backward per batch:')
    print(f'  dense einsum reference  {t_dense * 1e3:8.1f} ms')
    print(f'  PyG sparse path         {t_sparse * 1e3:8.1f} ms  '
          f'ratio {t_sparse / t_dense:.2f}')
    print(f'  PyG scatter path        {t_scatter * 1e3:8.1f} ms  '
          f'ratio {t_scatter / t_dense:.2f}')

    # Training throughput of the compact preset at SBU's shape (2 x 15, T=32).
    sbu = get_layout('sbu')
    compact = build_model('stgcn-compact', 3, 8, sbu)
    opt = torch.optim.SGD(compact.parameters(), lr=0.05, momentum=0.9)
    sbatch = Batch.from_data_list([
        Data(x=torch.randn(sbu.num_nodes, 32, 3), edge_index=sbu.edge_index(),
             y=torch.tensor([b % 8])) for b in range(32)])

    def train_step():
        opt.zero_grad()
        F.cross_entropy(compact(sbatch), sbatch.y).backward()
        opt.step()

    t_train = timed(train_step, args.repeats * 2)
    throughput = 32 / t_train
    print(f'stgcn-compact training on SBU-shaped batches of 32: '
          f'{throughput:.0f} sequences/s')

    # AttentionGCN at SBU's shape: its propagation as a PyG MessagePassing
    # layer (fused, and message by message) against the plain einsum it
    # replaced, swapped into the same model (same weights, same other layers),
    # the three taking turns round by round; medians.
    att = AttentionGCN(3, 8, sbu, num_frames=32)
    prop = att.propagation
    plain = EinsumPropagation(sbu.num_nodes, att.heads)

    def attention_step():
        att.zero_grad(set_to_none=True)
        F.cross_entropy(att(sbatch), sbatch.y).backward()

    att.eval()  # dropout off, so that the forms can be compared
    outputs = []
    with torch.no_grad():
        for module, fused in ((prop, True), (prop, False), (plain, True)):
            att.propagation, prop.fused = module, fused
            outputs.append(att(sbatch))
    print(f'AttentionGCN: max |fused - message by message| on logits (eval): '
          f'{(outputs[0] - outputs[1]).abs().max():.2e}, max |fused - einsum|: '
          f'{(outputs[0] - outputs[2]).abs().max():.2e}')
    att.train()
    times = {'einsum': [], 'fused': [], 'scatter': []}
    variants = {'einsum': (plain, True), 'fused': (prop, True),
                'scatter': (prop, False)}
    for name, (module, fused) in variants.items():  # warm-up
        att.propagation, prop.fused = module, fused
        attention_step()
    for _ in range(args.repeats * 4):
        for name, (module, fused) in variants.items():
            att.propagation, prop.fused = module, fused
            start = time.perf_counter()
            attention_step()
            times[name].append(time.perf_counter() - start)
    att.propagation, prop.fused = prop, True
    t_einsum, t_fused, t_messages = (statistics.median(times[k])
                                     for k in ('einsum', 'fused', 'scatter'))
    print('AttentionGCN (SBU, batch 32, T=32), forward+backward per batch:')
    print(f'  dense einsum            {t_einsum * 1e3:8.2f} ms')
    print(f'  MessagePassing, fused   {t_fused * 1e3:8.2f} ms  '
          f'ratio {t_fused / t_einsum:.2f}')
    print(f'  MessagePassing, scatter {t_messages * 1e3:8.2f} ms  '
          f'ratio {t_messages / t_einsum:.2f}')
    print(f'RESULT ratio_sparse_vs_dense={t_sparse / t_dense:.3f} '
          f'ratio_scatter_vs_dense={t_scatter / t_dense:.3f} '
          f'ratio_attention_mp_vs_einsum={t_fused / t_einsum:.3f} '
          f'ratio_attention_scatter_vs_einsum={t_messages / t_einsum:.3f} '
          f'dense_ms={t_dense * 1e3:.1f} sparse_ms={t_sparse * 1e3:.1f} '
          f'scatter_ms={t_scatter * 1e3:.1f} compact_train_seq_per_s={throughput:.0f}')


if __name__ == '__main__':
    main()
