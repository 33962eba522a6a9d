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


# -- the executed copies in docs/notebooks (`make notebooks`) -----------------

ROOT = EXAMPLES.parent
RENDERED = ROOT / 'docs' / 'notebooks'


def cell_sources(nb):
    return [(cell.cell_type, cell.source) for cell in nb.cells]


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_rendered_copy_has_the_cells_of_its_notebook(path):
    rendered = RENDERED / path.name
    assert rendered.exists(), f'{rendered.name} is missing: run `make notebooks`'
    nb, copy = nbformat.read(path, as_version=4), nbformat.read(rendered, as_version=4)
    nbformat.validate(copy)
    assert cell_sources(copy) == cell_sources(nb), (
        f'docs/notebooks/{path.name} is stale: run `make notebooks '
        f'NOTEBOOKS={path.stem}`')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_rendered_copy_shows_outputs_and_figures(path):
    copy = nbformat.read(RENDERED / path.name, as_version=4)
    cells = code_cells(copy)
    assert [cell.execution_count for _, cell in cells] == list(range(1, len(cells) + 1))
    for i, cell in cells:
        assert not [o for o in cell.outputs if o.output_type == 'error'], \
            f'{path.name}, cell {i} raised'
        if cell.source.splitlines()[-1].startswith('plot_'):
            assert any('image/png' in o.get('data', {}) for o in cell.outputs), \
                f'{path.name}, cell {i}: expected a figure'
    first = ''.join(o.get('text', '') for o in cells[0][1].outputs)
    assert first.startswith('budget: full; files go to $TMPDIR/'), first


def test_rendered_copies_hold_no_machine_paths():
    paths = [str(ROOT), sys.prefix, sys.base_prefix, '/tmp/']
    if str(Path.home()) not in ('/', ''):
        paths.append(str(Path.home()) + '/')
    for rendered in sorted(RENDERED.glob('*.ipynb')):
        text = rendered.read_text()
        for path in paths:
            assert path not in text, f'{rendered.name} holds {path!r}'


def test_readme_links_the_rendered_copies():
    readme = (ROOT / 'README.md').read_text()
    for path in NOTEBOOKS:
        assert f'(docs/notebooks/{path.name})' in readme


def test_render_script_scrubs_paths_and_shrinks_figures():
    import base64
    import importlib.util
    import io

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    spec = importlib.util.spec_from_file_location(
        'render_notebooks', ROOT / 'docs' / 'render_notebooks.py')
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1, 0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode('ascii')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x')])
    cell = nb.cells[0]
    cell.metadata['execution'] = {'iopub.status.busy': '2026-01-01T00:00:00Z'}
    cell.outputs = [
        nbformat.v4.new_output('stream', name='stdout', text='files in /scratch/t1/a\n'),
        nbformat.v4.new_output('error', ename='E', evalue='v',
                               traceback=['/opt/py/lib/x.py line 1']),
        nbformat.v4.new_output('display_data', data={'image/png': png,
                                                     'text/plain': '/opt/py'})]
    render.clean_outputs(nb, {'/scratch/t1': '$TMPDIR', '/opt/py': '<python>'})
    stream, error, display = cell.outputs
    assert stream.text == 'files in $TMPDIR/a\n'
    assert error.traceback == ['<python>/lib/x.py line 1']
    assert display.data['text/plain'] == '<python>'
    assert len(display.data['image/png']) < len(png)
    assert base64.b64decode(display.data['image/png']).startswith(b'\x89PNG')
    assert 'execution' not in cell.metadata
