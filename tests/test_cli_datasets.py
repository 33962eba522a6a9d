import re

import pytest

from tcmp_pyg.cli import main
from tcmp_pyg.datasets import DATASETS


def class_counts(out):
    """{class name: count} from the 'sequences per class' block."""
    block = out.split('sequences per class:\n', 1)[1]
    rows = [re.fullmatch(r'\s*(\d+)\s+(\S+)\s+(\d+)', line)
            for line in block.splitlines()]
    return {m.group(2): int(m.group(3)) for m in rows if m}


def test_datasets_table(capsys):
    assert main(['datasets']) == 0
    out = capsys.readouterr().out
    header, *rows = out.split('\n\n')[0].splitlines()
    assert header.split()[:4] == ['name', 'class', 'classes', 'sequences']
    assert [r.split()[0] for r in rows] == list(DATASETS)
    sbu = next(r for r in rows if r.startswith('sbu '))
    assert re.match(r'sbu\s+SBUKinectInteraction\s+8\s+282\s+2 x 15\s+sbu\s+5-fold', sbu)
    assert re.search(r'utkinect\s+UTKinectAction3D\s+10\s+199\s+1 x 20\s+kinect_v1', out)
    assert re.search(r'fpha\s+FPHA\s+45\s+1,175\s+1 x 21\s+fpha', out)
    assert 'ntu: root/raw/' in out and 'sbu: root/raw/<set>/<class 01..08>' in out


def test_inspect_small_tree(sbu_small, capsys):
    root, written = sbu_small
    assert main(['inspect', '--dataset', 'sbu', '--root', str(root),
                 '--fold', '2', '--split', 'test', '--num-frames', '12']) == 0
    out = capsys.readouterr().out
    assert f'{len(written)} sequences, 8 classes' in out
    assert 'x (test[0]): [30, 12, 3]' in out
    assert sum(class_counts(out).values()) == len(written)


def test_inspect_default_root(sbu_small, capsys, monkeypatch):
    root, written = sbu_small
    (root.parent / 'datasets').mkdir()
    root.rename(root.parent / 'datasets' / 'sbu')
    monkeypatch.chdir(root.parent)
    assert main(['inspect', '--dataset', 'sbu']) == 0
    assert 'at datasets/sbu' in capsys.readouterr().out


def test_inspect_errors(tmp_path, capsys):
    assert main(['inspect', '--dataset', 'kinetics']) == 2
    assert "unknown dataset 'kinetics'" in capsys.readouterr().err
    assert main(['inspect', '--dataset', 'msr', '--root', str(tmp_path),
                 '--fold', '1']) == 2
    assert "--fold does not apply to dataset 'msr'" in capsys.readouterr().err
    assert main(['inspect', '--dataset', 'fpha', '--root', str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'error: FPHA: raw files not found' in err and 'guiggh' in err
    assert main(['inspect', '--dataset', 'sbu', '--root', str(tmp_path),
                 '--fold', '9']) == 1
    assert "'fold' to be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['inspect'])


def test_inspect_real_sbu(sbu_root, capsys):
    assert main(['inspect', '--dataset', 'sbu', '--root', str(sbu_root)]) == 0
    out = capsys.readouterr().out
    assert '282 sequences, 8 classes' in out
    assert 'splits: train 227, test 55' in out
    assert 'sequences per fold: 1: 55, 2: 52, 3: 56, 4: 54, 5: 65' in out
    assert 'frames (original length): min 10, median 23, max 46' in out
    assert 'x (train[0]): [30, 40, 3]' in out
    assert class_counts(out) == {
        'approaching': 42, 'departing': 43, 'kicking': 40, 'punching': 41,
        'pushing': 18, 'hugging': 21, 'shaking_hands': 39,
        'exchanging_objects': 38}


def test_inspect_real_utkinect(utkinect_root, capsys):
    assert main(['inspect', '--dataset', 'utkinect', '--root', str(utkinect_root)]) == 0
    out = capsys.readouterr().out
    assert '199 sequences, 10 classes' in out
    assert 'splits: train 100, test 99' in out
    assert 'x (train[0]): [20, 40, 3]' in out
    counts = class_counts(out)
    assert counts.pop('carry') == 19 and set(counts.values()) == {20}
    assert main(['inspect', '--dataset', 'utkinect', '--root', str(utkinect_root),
                 '--protocol', 'loso', '--test-subject', '10',
                 '--labels', 'modified']) == 0
    out = capsys.readouterr().out
    assert '199 sequences' in out and 'splits: train 180, test 19' in out
