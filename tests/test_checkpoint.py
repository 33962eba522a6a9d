import os
import pickle

import pytest
import torch
from torch_geometric.data import Batch, Data

import tcmp_pyg
from tcmp_pyg.checkpoint import (CheckpointError, load_model,
                                 previous_checkpoint_path, read_checkpoint,
                                 read_resume_checkpoint, save_checkpoint)
from tcmp_pyg.nn import STGCN, AttentionGCN
from tcmp_pyg.pruning import connectivity, make_pruner


def pruned_stgcn() -> STGCN:
    """A tiny STGCN whose masks and gates differ from a fresh one's."""
    torch.manual_seed(0)
    model = STGCN(3, 4, 'sbu', channels=(8, 8))
    pruner = make_pruner('tcmp', model, 0.9)
    pruner.setup(10)
    pruner.finalize()  # masks at the budget, dead channels gated
    return model


def test_round_trip_keeps_masks_and_gates(tmp_path):
    model = pruned_stgcn()
    gates = [m.gate for m in model.modules() if hasattr(m, 'gate')]
    assert any((g == 0).any() for g in gates)  # something was gated
    path = tmp_path / 'model.pt'
    save_checkpoint(path, model, meta={'dataset': 'sbu', 'class_names': ['a', 'b']})

    loaded = tcmp_pyg.load_model(path)
    assert type(loaded) is STGCN and not loaded.training
    assert loaded.config() == model.config()
    expected = model.state_dict()
    assert list(loaded.state_dict()) == list(expected)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert connectivity(loaded).to_dict() == connectivity(model).to_dict()
    assert read_checkpoint(path)['meta']['class_names'] == ['a', 'b']

    batch = Batch.from_data_list([
        Data(x=torch.randn(30, 12, 3), edge_index=model.layout.edge_index())
        for _ in range(2)])
    model.eval()
    assert torch.allclose(loaded(batch), model(batch))


def test_attention_gcn_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AttentionGCN(3, 5, 'kinect_v1', num_frames=8, heads=2,
                         head_channels=4, hidden_channels=16)
    save_checkpoint(tmp_path / 'a.pt', model)
    loaded = load_model(tmp_path / 'a.pt')
    assert type(loaded) is AttentionGCN and loaded.config() == model.config()
    assert torch.equal(loaded.attention, model.attention)


def test_file_is_plain_data_and_written_atomically(tmp_path):
    path = tmp_path / 'run' / 'model.pt'
    save_checkpoint(path, pruned_stgcn())
    assert sorted(os.listdir(path.parent)) == ['model.pt']  # no temp file left
    raw = torch.load(path, weights_only=True)
    assert raw['format'] == 'tcmp_pyg.checkpoint' and raw['version'] == 1
    assert raw['model']['class_name'] == 'STGCN'
    assert raw['model']['config']['channels'] == [8, 8]


def test_keep_previous_and_fall_back_on_it(tmp_path):
    path = tmp_path / 'model.pt'
    prev = tmp_path / 'model.prev.pt'
    assert previous_checkpoint_path(path) == str(prev)
    assert read_resume_checkpoint(path) is None  # a new run
    model = pruned_stgcn()
    for epoch in (1, 2, 3):
        save_checkpoint(path, model, training=dict(epoch=epoch), keep_previous=True)
    assert sorted(os.listdir(tmp_path)) == ['model.prev.pt', 'model.pt']
    assert read_checkpoint(prev)['training']['epoch'] == 2
    checkpoint, used = read_resume_checkpoint(path)
    assert checkpoint['training']['epoch'] == 3 and used == str(path)

    # A corrupt latest checkpoint: the previous one is used, the bad one moved
    # aside (not kept again by the next save).
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    with pytest.warns(UserWarning, match=r"model.pt' is corrupt or truncated "
                                         r".*Moved it to '.*model.pt.corrupt' "
                                         r"and resuming from the previous "
                                         r"checkpoint '.*model.prev.pt' \(epoch 2\)"):
        checkpoint, used = read_resume_checkpoint(path)
    assert checkpoint['training']['epoch'] == 2 and used == str(prev)
    assert sorted(os.listdir(tmp_path)) == ['model.prev.pt', 'model.pt.corrupt']
    save_checkpoint(path, model, training=dict(epoch=3), keep_previous=True)
    assert read_checkpoint(prev)['training']['epoch'] == 2

    # Nothing good to fall back on: a clear error that says what to do.
    path.write_bytes(b'garbage')
    prev.write_bytes(b'')
    with pytest.raises(CheckpointError, match=r"model.pt' is corrupt .* The "
                                              r"previous checkpoint is unusable "
                                              r"too .*delete both"):
        read_resume_checkpoint(path)
    prev.unlink()
    with pytest.raises(CheckpointError, match=r"no previous checkpoint "
                                              r"\('.*model.prev.pt'\) to fall "
                                              r"back on: delete '.*model.pt'"):
        read_resume_checkpoint(path)


def test_meta_must_be_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"'checkpoint.meta.fn' to hold only "
                                        r"tensors and plain data"):
        save_checkpoint(tmp_path / 'm.pt', pruned_stgcn(), meta={'fn': print})
    assert not (tmp_path / 'm.pt').exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ('echo pwned > pwned.txt',))


# torch warns that the evil file's pickle protocol is not its default.
@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pt'
    # A real torch zip file whose pickle calls os.system when unpickled.
    torch.save({'format': 'tcmp_pyg.checkpoint', 'payload': _Exploit()}, path)
    with pytest.raises(CheckpointError, match=r'Refusing to load .*GLOBAL'):
        load_model(path)
    # A bare pickle (not a torch zip file) is refused too.
    with open(tmp_path / 'evil.pkl', 'wb') as f:
        pickle.dump(_Exploit(), f, protocol=2)
    with pytest.raises(CheckpointError, match=r'Refusing to load .*GLOBAL'):
        load_model(tmp_path / 'evil.pkl')
    assert not (tmp_path / 'pwned.txt').exists()


def test_corrupt_and_missing_files(tmp_path):
    path = tmp_path / 'model.pt'
    save_checkpoint(path, pruned_stgcn())
    data = path.read_bytes()
    (tmp_path / 'truncated.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="'.*truncated.pt' is corrupt"):
        load_model(tmp_path / 'truncated.pt')
    (tmp_path / 'garbage.pt').write_bytes(b'\x00not a checkpoint' * 10)
    with pytest.raises(CheckpointError, match='corrupt'):
        load_model(tmp_path / 'garbage.pt')
    (tmp_path / 'empty.pt').write_bytes(b'')
    with pytest.raises(CheckpointError, match='corrupt'):
        load_model(tmp_path / 'empty.pt')
    with pytest.raises(CheckpointError, match='not found'):
        load_model(tmp_path / 'absent.pt')
    torch.save({'weights': torch.ones(3)}, tmp_path / 'other.pt')
    with pytest.raises(CheckpointError, match='Expected .* to be a tcmp_pyg '
                                              'checkpoint'):
        load_model(tmp_path / 'other.pt')


def test_mismatched_state_dict_is_an_error(tmp_path):
    path = tmp_path / 'model.pt'
    save_checkpoint(path, pruned_stgcn())
    checkpoint = torch.load(path, weights_only=True)

    missing = dict(checkpoint, state_dict=dict(checkpoint['state_dict']))
    del missing['state_dict']['blocks.0.gcn.weight_mask']
    torch.save(missing, tmp_path / 'missing.pt')
    with pytest.raises(CheckpointError, match=r'does not match STGCN(.|\n)*'
                                              r'blocks\.0\.gcn\.weight_mask'):
        load_model(tmp_path / 'missing.pt')

    wider = dict(checkpoint, model=dict(checkpoint['model']))
    wider['model']['config'] = dict(checkpoint['model']['config'], channels=[8, 16])
    torch.save(wider, tmp_path / 'wider.pt')
    with pytest.raises(CheckpointError, match='size mismatch'):
        load_model(tmp_path / 'wider.pt')

    unknown = dict(checkpoint, model=dict(class_name='ResNet', config={}))
    torch.save(unknown, tmp_path / 'unknown.pt')
    with pytest.raises(CheckpointError, match="cannot rebuild model ResNet"):
        load_model(tmp_path / 'unknown.pt')
