"""Multi-process training on the CPU (gloo): two processes against one, masks
on every rank, the CLI's --nproc and an exact resume of a distributed run."""
import json
import shutil

import pytest
import torch

from tcmp_pyg import load_model
from tcmp_pyg.cli import main
from tcmp_pyg.datasets.splits import dataset_splits
from tcmp_pyg.distributed import (DistributedContext, launch, mask_digest,
                                  process_group)
from tcmp_pyg.nn import STGCN
from tcmp_pyg.pruning import make_pruner
from tcmp_pyg.train import TrainConfig, train

SPLIT_OPTIONS = dict(num_samples=120, num_classes=4, num_frames=16,
                     layout='kinect_v1', difficulty=0.2)


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def easy_root(tmp_path_factory):
    """A processed synthetic set (80 training, 40 test sequences, 4 classes)
    that the spawned processes only read."""
    root = tmp_path_factory.mktemp('synthetic')
    dataset_splits('synthetic', str(root), **SPLIT_OPTIONS)
    return str(root)


def without_times(history):
    return [{k: v for k, v in row.items() if not k.endswith('time_s')}
            for row in history]


def train_tcmp(root: str, out: str) -> int:
    """One process of a TCMP run (or the only one); each rank records its
    mask digest and result in OUT/rank<r>.json."""
    torch.set_num_threads(1)
    with process_group('cpu'):
        train_ds, test_ds = dataset_splits('synthetic', root, **SPLIT_OPTIONS)
        torch.manual_seed(0)
        model = STGCN(6, 4, train_ds.layout, channels=(8, 8))
        pruner = make_pruner('tcmp', model, 0.9)
        config = TrainConfig(epochs=8, batch_size=8, lr=0.05, warmup=1,
                             progress=False)
        result = train(model, train_ds, test_ds, config, pruner=pruner,
                       out_dir=out)
        rank = DistributedContext.current().rank
        record = dict(digest=mask_digest(model), test_accuracy=result.test_accuracy,
                      history=without_times(result.history))
        with open(f'{out}/rank{rank}.json', 'w') as f:
            json.dump(record, f)
    return 0


def test_two_processes_match_one_and_masks_agree(easy_root, tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    assert train_tcmp(easy_root, str(one)) == 0
    # Global batch 8 in both: 4 sequences per process here.
    assert launch(train_tcmp, (easy_root, str(two)), nproc=2) == 0

    single = json.loads((one / 'rank0.json').read_text())
    ranks = [json.loads((two / f'rank{r}.json').read_text()) for r in (0, 1)]
    # Bit-identical masks and gates on both ranks, as in the checkpoint.
    assert ranks[0]['digest'] == ranks[1]['digest']
    assert ranks[0]['digest'] == mask_digest(load_model(two / 'model.pt'))
    metrics = json.loads((two / 'metrics.json').read_text())
    assert metrics['distributed'] == dict(world_size=2, backend='gloo',
                                          mask_digests=[ranks[0]['digest']] * 2)
    assert 'distributed' not in json.loads((one / 'metrics.json').read_text())
    # Every rank reports rank 0's evaluation of the same model.
    assert ranks[0]['history'] == ranks[1]['history']

    # The same schedule and budget, and it learns as well as one process
    # (chance is 0.25; one process reaches 0.8, two 0.75 at seed 0).
    h1, h2 = single['history'], ranks[0]['history']
    assert [r['lr'] for r in h1] == [r['lr'] for r in h2]
    assert [r['kept'] for r in h1] == [r['kept'] for r in h2]
    assert abs(h2[-1]['train_loss'] - h1[-1]['train_loss']) < 0.15
    assert single['test_accuracy'] >= 0.6 and ranks[0]['test_accuracy'] >= 0.6
    assert abs(ranks[0]['test_accuracy'] - single['test_accuracy']) <= 0.125


def test_cli_nproc_resumes_exactly(tmp_path, capfd):
    # Magnitude pruning this time; the CLI's --nproc spawns the processes.
    run, resumed = tmp_path / 'run', tmp_path / 'resumed'
    command = ['train', '--dataset', 'synthetic', '--root', str(tmp_path / 'data'),
               '--num-samples', '40', '--num-frames', '8', '--epochs', '3',
               '--batch-size', '8', '--lr', '0.05', '--warmup', '1',
               '--prune', 'mp', '--amount', '0.9', '--threads', '1', '--quiet',
               '--nproc', '2']
    assert main(command + ['--out', str(run)]) == 0
    out = capfd.readouterr().out
    assert out.count('test accuracy:') == 1  # only rank 0 reports

    # As if killed during epoch 3: the kept previous checkpoint is epoch 2.
    shutil.copytree(run, resumed)
    (resumed / 'model.prev.pt').replace(resumed / 'model.pt')
    (resumed / 'metrics.json').unlink()
    assert main(command + ['--out', str(resumed)]) == 0
    assert f'resumed {resumed} from epoch 2' in capfd.readouterr().out

    a, b = (json.loads((d / 'metrics.json').read_text()) for d in (run, resumed))
    assert a['test_accuracy'] == b['test_accuracy']
    assert a['distributed']['mask_digests'] == b['distributed']['mask_digests']
    assert len(set(a['distributed']['mask_digests'])) == 1
    ha, hb = (json.loads((d / 'history.json').read_text()) for d in (run, resumed))
    assert without_times(ha) == without_times(hb)
    ma, mb = load_model(run / 'model.pt'), load_model(resumed / 'model.pt')
    sa, sb = ma.state_dict(), mb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cli_nproc_errors(tmp_path, capsys, monkeypatch):
    base = ['train', '--dataset', 'synthetic', '--root', str(tmp_path),
            '--out', str(tmp_path / 'run')]
    assert main(base + ['--nproc', '3', '--batch-size', '16']) == 1
    assert 'must be a multiple of the 3 processes' in capsys.readouterr().err
    assert main(base + ['--nproc', '0']) == 1
    assert '--nproc must be >= 1' in capsys.readouterr().err
    # Under torchrun the world size comes from the environment.
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    assert main(base + ['--nproc', '4']) == 1
    assert 'torchrun started 2 processes' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_mask_digest_and_disagreeing_ranks(monkeypatch):
    torch.manual_seed(0)
    model = STGCN(6, 4, 'kinect_v1', channels=(8, 8))
    before = mask_digest(model)
    make_pruner('mp', model, 0.5).finalize()
    assert mask_digest(model) != before

    ctx = DistributedContext()
    assert not ctx.enabled and ctx.is_main
    assert ctx.sum(1.5, 2) == [1.5, 2] and ctx.broadcast('x') == 'x'
    ctx = DistributedContext(rank=0, world_size=2, backend='gloo')
    monkeypatch.setattr(ctx, 'gather', lambda obj: [obj, 'another digest'])
    with pytest.raises(RuntimeError, match=r'After epoch 3 the pruning masks '
                                           r'of rank\(s\) \[1\] differ'):
        ctx.check_masks(model, epoch=3)
