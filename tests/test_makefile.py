"""The Makefile's torch install line, read from `make -n` (a dry run: nothing
is created or downloaded)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which('make') is None,
                                reason='needs GNU make on PATH')


def torch_install_line(tmp_path, *variables, env=None):
    """The dry-run line that installs torch into a fresh venv under tmp_path."""
    venv = tmp_path / 'venv'
    # Not the settings of a `make test` this may run under (MAKEFLAGS carries
    # its command-line variables to sub-makes).
    clean = {k: v for k, v in os.environ.items()
             if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'TORCH', 'TORCH_INDEX',
                          'TORCH_PIP_ARGS', 'PYTHON')}
    out = subprocess.run(['make', '-n', '-C', str(ROOT), f'VENV={venv}', *variables,
                          f'{venv}/.stamps/torch'], capture_output=True, text=True,
                         check=True, env={**clean, **(env or {})}).stdout
    (line, ) = [line for line in out.splitlines() if 'pip install' in line
                and 'torch==' in line]
    return line


def test_default_installs_the_pinned_torch_from_the_default_index(tmp_path):
    line = torch_install_line(tmp_path)
    # Only when no torch is importable yet, and with no extra pip options.
    assert line.startswith(f'{tmp_path}/venv/bin/python -c "import torch"')
    assert line.endswith('-m pip install "torch==2.13.0"')
    assert 'index-url' not in line


def test_torch_index_selects_the_wheel_source(tmp_path):
    line = torch_install_line(tmp_path, 'TORCH_INDEX=https://download.pytorch.org/whl/cpu')
    # Named on the command line: installed unconditionally, from that index.
    assert line == (f'{tmp_path}/venv/bin/python -m pip install --index-url '
                    f'https://download.pytorch.org/whl/cpu "torch==2.13.0"')


def test_torch_pip_args_and_torch_combine(tmp_path):
    line = torch_install_line(tmp_path, 'TORCH=torch==2.5.1',
                              'TORCH_PIP_ARGS=--no-cache-dir --index-url https://example.org/simple')
    assert line == (f'{tmp_path}/venv/bin/python -m pip install --no-cache-dir '
                    f'--index-url https://example.org/simple "torch==2.5.1"')


def test_torch_index_from_the_environment_applies_to_the_fallback(tmp_path):
    line = torch_install_line(
        tmp_path, env={'TORCH_INDEX': 'https://download.pytorch.org/whl/cpu'})
    assert 'import torch' in line  # an importable torch is still kept
    assert line.endswith('pip install --index-url https://download.pytorch.org/whl/cpu '
                         '"torch==2.13.0"')
