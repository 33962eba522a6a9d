"""Renders the example notebooks with their outputs into docs/notebooks/.

The notebooks in examples/ are committed without outputs (the tests execute
them from scratch). A reader of the repository on the code host sees no figure
there, so this script executes each one on the full budget, in a kernel of
this interpreter, and writes the executed copy to docs/notebooks/<name>.ipynb::

    python docs/render_notebooks.py            # or: make notebooks
    python docs/render_notebooks.py 02_mp_vs_tcmp

Outputs are made reproducible and free of this machine's details: the
temporary folder the notebooks work in, the interpreter's prefix and the home
folder are replaced by placeholders, timings are not recorded, and figures are
stored as palette PNGs to stay small.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / 'examples'
RENDERED = ROOT / 'docs' / 'notebooks'
CELL_TIMEOUT = 1800  # seconds per cell; the full budget takes minutes


def small_png(data: str) -> str:
    """A base64 PNG re-encoded with a 256-colour palette (plots need few)."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data))).convert('RGB')
    buf = io.BytesIO()
    image.quantize(colors=256).save(buf, format='png', optimize=True)
    smaller = base64.b64encode(buf.getvalue()).decode('ascii')
    return smaller if len(smaller) < len(data) else data


def scrub(text: str, replacements: Dict[str, str]) -> str:
    """``text`` with every machine-specific path replaced by its placeholder."""
    for path, placeholder in replacements.items():
        text = text.replace(path, placeholder)
    return text


def clean_outputs(nb: nbformat.NotebookNode, replacements: Dict[str, str]) -> None:
    """Scrubs paths from the outputs, shrinks the figures and drops the
    per-cell execution metadata (timings), in place."""
    for cell in nb.cells:
        if cell.cell_type != 'code':
            continue
        cell.metadata.pop('execution', None)
        for output in cell.get('outputs', []):
            if 'text' in output:
                output['text'] = scrub(output['text'], replacements)
            if output.get('output_type') == 'error':
                output['traceback'] = [scrub(line, replacements)
                                       for line in output['traceback']]
            data = output.get('data', {})
            for mime, value in list(data.items()):
                if mime == 'image/png':
                    data[mime] = small_png(value)
                elif mime.startswith('text/'):
                    data[mime] = scrub(value if isinstance(value, str)
                                       else ''.join(value), replacements)


def render(source: Path, target: Path) -> None:
    """Executes ``source`` on the full budget and writes ``target``.

    Raises:
        nbclient.exceptions.CellExecutionError: If a cell fails (nothing is
            written then).
    """
    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory(prefix='tcmp_pyg_render_') as tmp:
        tmp = os.path.realpath(tmp)
        cwd = Path(tmp) / 'cwd'
        cwd.mkdir()
        # The kernel inherits this environment: the full budget, temporary
        # files in tmp, and the kernel spec of this environment first.
        env = dict(TCMP_PYG_NOTEBOOK_BUDGET='full', TMPDIR=tmp,
                   JUPYTER_PREFER_ENV_PATH='1')
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            client = nbclient.NotebookClient(
                nb, kernel_name='python3', timeout=CELL_TIMEOUT,
                record_timing=False, resources={'metadata': {'path': str(cwd)}})
            client.execute()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    # Longest first, so that a path inside another is replaced first.
    paths = {tmp: '$TMPDIR', str(ROOT): '<repository>', sys.prefix: '<python>',
             sys.base_prefix: '<python>', str(Path.home()): '~'}
    replacements = {p: paths[p] for p in sorted(paths, key=len, reverse=True)
                    if len(p) > 1}
    clean_outputs(nb, replacements)
    nb.metadata.pop('widgets', None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix('.ipynb.tmp')
    nbformat.write(nb, partial)
    os.replace(partial, target)  # a failed run never leaves half a file


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='*',
                        help='notebook names without .ipynb (default: all of examples/)')
    args = parser.parse_args(argv)
    sources = sorted(EXAMPLES.glob('*.ipynb'))
    if args.names:
        known = {p.stem: p for p in sources}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            parser.error(f'no notebook {unknown} in examples/ (expected some '
                         f'of {sorted(known)})')
        sources = [known[n] for n in args.names]
    for source in sources:
        target = RENDERED / source.name
        print(f'rendering {source.relative_to(ROOT)} -> '
              f'{target.relative_to(ROOT)}', flush=True)
        render(source, target)
    return 0


if __name__ == '__main__':
    sys.exit(main())
