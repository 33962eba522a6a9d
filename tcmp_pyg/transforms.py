"""Skeleton transforms (``BaseTransform`` subclasses) on ``data.x`` of shape
``[M * V, T, C]``."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform


def resample_frames(x: Tensor, num_frames: int, dim: int = 1) -> Tensor:
    r"""Resamples a sequence to ``num_frames`` frames by linear interpolation.

    The first and last frames are kept; a one-frame sequence is repeated.

    Args:
        x (Tensor): Any tensor with time along ``dim``.
        num_frames (int): Output length (>= 1).
        dim (int, optional): The time dimension. (default: :obj:`1`)
    """
    if int(num_frames) < 1:
        raise ValueError(f"Expected 'num_frames' >= 1 (got {num_frames})")
    T = x.size(dim)
    if T < 1:
        raise ValueError("Cannot resample a sequence with no frame")
    if T == num_frames:
        return x
    x = x.movedim(dim, 0)
    if T == 1:
        out = x.expand(num_frames, *x.shape[1:]).clone()
    else:
        pos = torch.linspace(0, T - 1, num_frames, dtype=torch.float64)
        lo = pos.floor().long().clamp(max=T - 2)
        frac = (pos - lo.double()).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        out = x[lo] * (1 - frac) + x[lo + 1] * frac
    return out.movedim(0, dim)


class TemporalResample(BaseTransform):
    r"""Resamples ``data.x`` to ``num_frames`` frames (linear interpolation).

    Args:
        num_frames (int): Output number of frames.
    """
    def __init__(self, num_frames: int) -> None:
        self.num_frames = int(num_frames)

    def forward(self, data: Data) -> Data:
        data.x = resample_frames(data.x, self.num_frames, dim=1)
        return data

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.num_frames})'
