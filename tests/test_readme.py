import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / 'README.md'


def code_blocks(language):
    return re.findall(rf'```{language}\n(.*?)```', README.read_text(), flags=re.S)


def test_quick_start_begins_with_make_demo_and_make_test():
    first = code_blocks('bash')[0].splitlines()
    assert first[0].startswith('make demo') and first[1].startswith('make test')


def test_api_block_runs(tmp_path, monkeypatch, capsys):
    (block, ) = [b for b in code_blocks('python') if 'train(model' in b]
    # The block as printed, on a smaller budget.
    small = block.replace('num_samples=300', 'num_samples=40').replace(
        'TrainConfig(epochs=12, lr=0.05)', 'TrainConfig(epochs=1, lr=0.05, progress=False)')
    assert small != block
    monkeypatch.chdir(tmp_path)
    exec(compile(small, 'README.md', 'exec'), {})
    out = capsys.readouterr().out
    assert 'consistent' in out
    before, after = map(int, out.strip().splitlines()[-1].split(' -> '))
    assert after < before


def test_cli_commands_in_readme_exist():
    from tcmp_pyg.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for block in code_blocks('bash'):
        for name in re.findall(r'^tcmp-pyg (\w+)', block, flags=re.M):
            assert name in commands, name


def test_own_training_loop_block_runs(tmp_path, monkeypatch, capsys):
    (block, ) = [b for b in code_blocks('python') if 'pruner.setup(' in b]
    for call in ('pruner.setup(', 'pruner.step(', 'pruner.penalty()',
                 'pruner.finalize()'):
        assert call in block
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, 'README.md', 'exec'), namespace)  # as printed
    kept, live, dead, budget = map(int, capsys.readouterr().out.split()[-4:])
    assert kept == live == budget and dead == 0
    pruner = namespace['pruner']
    assert pruner.frozen and pruner.mode == 'relaxed' and pruner.updates > 1
    assert pruner.penalty() is None  # frozen: no budget term any more


def test_readme_names_the_mode_closest_to_the_paper():
    text = README.read_text()
    section = text[text.index('## TCMP in your own training loop'):]
    section = section[:section.index('\n## ', 1)]
    assert "`mode='relaxed'` is the closer of the two modes" in section
