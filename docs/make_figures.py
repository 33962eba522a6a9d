"""Regenerates the README figures in docs/.

Compact ST-GCN on the SBU layout (random initialisation, seed 0), pruned one
shot at 99 % by plain magnitude pruning and by TCMP, drawn side by side::

    python docs/make_figures.py

The PNG is written with a 256-colour palette to stay small (< 200 KB).
"""
import copy
import io
from pathlib import Path

import torch
from PIL import Image

from tcmp_pyg.nn.models import build_model
from tcmp_pyg.pruning import TCMP, connectivity, magnitude_prune
from tcmp_pyg.visualization import plot_mp_vs_tcmp

DOCS = Path(__file__).resolve().parent
AMOUNT = 0.99


def save_small_png(fig, path: Path, dpi: int = 100) -> None:
    """Saves ``fig`` as a palette PNG (anti-aliased lines need few colours)."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi)
    buf.seek(0)
    image = Image.open(buf).convert('RGB').quantize(colors=256)
    image.save(path, optimize=True)


def main() -> None:
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, 8, 'sbu')  # 3-D joints, 8 classes

    model_mp = copy.deepcopy(model)
    magnitude_prune(model_mp, AMOUNT)

    model_tcmp = copy.deepcopy(model)
    pruner = TCMP(model_tcmp, AMOUNT)
    pruner.update(pruner.budget, final=True)  # one-shot consistent mask

    for name, m in (('MP', model_mp), ('TCMP', model_tcmp)):
        report = connectivity(m)
        print(f'{name}: kept {report.kept}, live {report.live}, '
              f'dead {report.dead}')

    # Limits above the compact model's sizes: every channel and connection.
    fig = plot_mp_vs_tcmp(model_mp, model_tcmp, max_channels=64,
                          max_connections=1000)
    out = DOCS / 'subnetwork_mp_vs_tcmp.png'
    save_small_png(fig, out)
    print(f'wrote {out} ({out.stat().st_size / 1024:.0f} KB)')


if __name__ == '__main__':
    main()
