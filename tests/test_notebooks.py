"""The example notebooks (examples/*.ipynb): each runs top to bottom on the
small budget, in a kernel of this interpreter, and the copies in the
repository carry no outputs."""
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    'nbformat', reason="the notebook tests need nbformat: pip install -e '.[test]'")
nbclient = pytest.importorskip(
    'nbclient', reason="the notebook tests need nbclient: pip install -e '.[test]'")
pytest.importorskip(
    'ipykernel', reason="the notebook tests need ipykernel: pip install -e '.[test]'")

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'
NOTEBOOKS = sorted(EXAMPLES.glob('*.ipynb'))
EXPECTED = ['00_quickstart.ipynb', '01_datasets.ipynb', '02_mp_vs_tcmp.ipynb',
            '03_miniaturize.ipynb']
CELL_TIMEOUT = 300  # seconds per cell; a whole notebook takes seconds


def code_cells(nb):
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == 'code']


def test_the_numbered_notebooks_are_all_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in code_cells(nb):
        assert cell.outputs == [], (f'{path.name}, cell {i}: has outputs '
                                    f'(clear them before committing)')
        assert cell.execution_count is None, (
            f'{path.name}, cell {i}: has an execution count (clear the outputs '
            f'before committing)')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_small_budget(path, tmp_path, monkeypatch):
    cwd, tmp = tmp_path / 'cwd', tmp_path / 'tmp'
    cwd.mkdir()
    tmp.mkdir()
    # The kernel inherits this environment: the small budget, temporary files
    # in tmp/, and the kernel spec of this environment before any user one.
    monkeypatch.setenv('TCMP_PYG_NOTEBOOK_BUDGET', 'small')
    monkeypatch.setenv('TMPDIR', str(tmp))
    monkeypatch.setenv('JUPYTER_PREFER_ENV_PATH', '1')
    nb = nbformat.read(path, as_version=4)
    # One more cell reports the kernel's interpreter (checked below).
    nb.cells.append(nbformat.v4.new_code_cell('import sys; print(sys.executable)'))

    client = nbclient.NotebookClient(nb, kernel_name='python3',
                                     timeout=CELL_TIMEOUT,
                                     resources={'metadata': {'path': str(cwd)}})
    client.execute()  # raises CellExecutionError naming the failing cell

    *cells, (_, last) = code_cells(nb)
    assert os.path.realpath(last.outputs[0]['text'].strip()) == \
        os.path.realpath(sys.executable)
    for i, cell in cells:
        assert not [o for o in cell.outputs if o.output_type == 'error'], \
            f'{path.name}, cell {i} raised'
        if cell.source.splitlines()[-1].startswith('plot_'):  # shows a figure
            assert any('image/png' in o.get('data', {}) for o in cell.outputs), \
                f'{path.name}, cell {i}: expected an inline figure'
    # Nothing is written to the working folder (the repository, in use), and
    # the notebook removes its temporary folder at the end.
    assert list(cwd.iterdir()) == []
    assert [p.name for p in tmp.iterdir() if p.name.startswith('tcmp_pyg_')] == []
