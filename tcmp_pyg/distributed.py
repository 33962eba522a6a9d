r"""Multi-process training: one process per device, DistributedDataParallel.

The same ``tcmp-pyg train`` command trains in one process, in ``N`` local
processes (``--nproc N``, started here with :func:`launch`) or in the
processes that ``torchrun`` starts (it sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; see
:func:`torchrun_world_size`). Every process joins the group with
:func:`process_group` (backend ``nccl`` for a CUDA device, ``gloo`` for the
CPU) and runs :func:`tcmp_pyg.train.train`, which asks
:meth:`DistributedContext.current` where it stands:

- ``--batch-size`` is the *global* batch: each of the ``N`` processes takes
  ``batch_size / N`` sequences per step from a seeded
  :class:`~torch.utils.data.distributed.DistributedSampler` (``set_epoch``
  every epoch), and DistributedDataParallel averages the gradients, so a step
  sees the same number of sequences and uses the same learning rate as a
  one-process run;
- weights are identical on every rank after each step, so the deterministic
  mask selection of MP and TCMP gives identical masks without communication;
  :meth:`DistributedContext.check_masks` verifies it after every epoch (a
  digest per rank) and stops the run if a rank disagrees;
- BatchNorm statistics are per process during an epoch and averaged over the
  processes at its end, so every rank holds the same model when it is
  evaluated and checkpointed (each rank evaluates the whole test split and
  gets the same numbers; rank 0's are reported);
- only rank 0 writes the run folder; the checkpoint keeps every rank's RNG
  state, so a resumed run continues exactly (with the same number of
  processes).
"""
from __future__ import annotations

import hashlib
import os
import socket
import sys
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch_geometric.loader import DataLoader

from tcmp_pyg.nn.prunable import ChannelGate, PrunableModule

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def torchrun_world_size() -> Optional[int]:
    """The ``WORLD_SIZE`` that ``torchrun`` (or :func:`launch`) put in the
    environment, or :obj:`None` for a plain process."""
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        return None
    return int(os.environ['WORLD_SIZE'])


def backend_for(device: Any) -> str:
    """``'nccl'`` for a CUDA device, ``'gloo'`` otherwise."""
    return 'nccl' if torch.device(device).type == 'cuda' else 'gloo'


@contextmanager
def process_group(device: str) -> Iterator[str]:
    r"""Joins the process group described by the environment (``torchrun``'s
    variables) for the duration of the block, and leaves it afterwards.

    Args:
        device (str): The device asked for (``'cpu'``, ``'cuda'``). With a
            CUDA device every process takes ``cuda:LOCAL_RANK``.

    Yields:
        The device of this process (``device`` itself without a group, or with
        a group of one process).
    """
    world_size = torchrun_world_size()
    if world_size is None or world_size == 1:
        yield device
        return
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    dev = torch.device(device)
    if dev.type == 'cuda':
        if dev.index is not None:
            raise ValueError(f"Expected '--device cuda' without an index when "
                             f"training in several processes (each takes "
                             f"cuda:LOCAL_RANK) (got '{device}')")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"Process with LOCAL_RANK {local_rank} has no GPU: "
                             f"this machine has {torch.cuda.device_count()}; "
                             f"start at most that many processes per machine")
        torch.cuda.set_device(local_rank)
        device = f'cuda:{local_rank}'
    dist.init_process_group(backend_for(device), init_method='env://')
    try:
        yield device
    finally:
        dist.destroy_process_group()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Runs the block in rank 0 first, then in the other ranks (e.g. to
    process a dataset once on a shared file system). If it fails in rank 0
    the other ranks still run it, and most likely fail the same way."""
    ctx = DistributedContext.current()
    if ctx.enabled and not ctx.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if ctx.enabled and ctx.is_main:
            dist.barrier()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(local_rank: int, fn: Callable[..., int], args: Sequence[Any],
            nproc: int, port: int, threads: int) -> None:
    # What torchrun sets, for a single machine.
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank),
                      WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    code = fn(*args)
    if code:
        sys.exit(code)


def launch(fn: Callable[..., int], args: Sequence[Any], nproc: int) -> int:
    r"""Runs ``fn(*args)`` in ``nproc`` new local processes with the
    environment ``torchrun --nproc_per_node nproc`` would give them (started
    with :func:`torch.multiprocessing.start_processes`, method ``spawn``).

    Each process gets ``OMP_NUM_THREADS`` (default: the CPU cores divided by
    ``nproc``) torch threads. If a process fails the others are stopped.

    Args:
        fn (callable): A module-level function (it is pickled) returning an
            exit code.
        args (Sequence): Its arguments.
        nproc (int): Processes to start.

    Returns:
        0, or the exit code of the first process that failed.
    """
    from torch.multiprocessing import (ProcessExitedException,
                                       ProcessRaisedException, start_processes)

    threads = int(os.environ.get('OMP_NUM_THREADS', 0)) or max(
        1, (os.cpu_count() or 1) // nproc)
    try:
        start_processes(_worker, args=(fn, tuple(args), nproc, _free_port(),
                                       threads),
                        nprocs=nproc, join=True, start_method='spawn')
    except ProcessExitedException as e:  # sys.exit(code), or a signal
        return e.exit_code if e.exit_code and e.exit_code > 0 else 1
    except ProcessRaisedException as e:  # the message holds its traceback
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def mask_digest(model: nn.Module) -> str:
    """SHA-256 of every mask and channel gate of ``model`` (their exact bits,
    in module order)."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, PrunableModule):
            buf = module.weight_mask
        elif isinstance(module, ChannelGate):
            buf = module.gate
        else:
            continue
        h.update(name.encode())
        h.update(buf.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class DistributedContext:
    r"""Where this process stands in the process group, and the few
    collective steps :func:`~tcmp_pyg.train.train` needs. Without an
    initialised group (or with one process) ``world_size`` is 1 and every
    method returns what one process computes.

    Args:
        rank (int): This process. (default: :obj:`0`)
        world_size (int): Processes in the group. (default: :obj:`1`)
        backend (str, optional): The group's backend. (default: :obj:`None`)
    """

    def __init__(self, rank: int = 0, world_size: int = 1,
                 backend: Optional[str] = None) -> None:
        self.rank = rank
        self.world_size = world_size
        self.backend = backend

    @classmethod
    def current(cls) -> 'DistributedContext':
        """The default process group's rank and size (one process if none is
        initialised)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), dist.get_backend())
        return cls()

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(rank={self.rank}, world_size='
                f'{self.world_size}, backend={self.backend!r})')

    # -- data and model ------------------------------------------------------
    def train_loader(self, dataset: Any, batch_size: int,
                     generator: torch.Generator, seed: int) -> DataLoader:
        r"""The shuffled training loader. With several processes each takes
        ``batch_size / world_size`` sequences per step from a
        :class:`~torch.utils.data.distributed.DistributedSampler` seeded with
        ``seed`` (call :meth:`set_epoch` every epoch); else the order comes
        from ``generator``."""
        if not self.enabled:
            return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                              generator=generator)
        if batch_size % self.world_size:
            raise ValueError(
                f"Expected the batch size ({batch_size}) to be a multiple of "
                f"the number of processes ({self.world_size}): it is the "
                f"global batch, split evenly across processes")
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(dataset, num_replicas=self.world_size,
                                     rank=self.rank, shuffle=True, seed=seed)
        return DataLoader(dataset, batch_size=batch_size // self.world_size,
                          sampler=sampler)

    @staticmethod
    def set_epoch(loader: DataLoader, epoch: int) -> None:
        """Reshuffles a distributed loader for ``epoch`` (no-op otherwise)."""
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel`
        (gradients averaged over processes; buffers such as masks are not
        broadcast), or ``model`` itself for one process."""
        if not self.enabled:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel
        ids = None
        if device.type == 'cuda':
            ids = [torch.cuda.current_device() if device.index is None
                   else device.index]
        # Buffers (masks, gates, BatchNorm statistics) are not broadcast at
        # every forward pass (newer torch calls that forward_sync_buffers).
        sync = ('forward_sync_buffers'
                if 'forward_sync_buffers' in inspect.signature(
                    DistributedDataParallel).parameters else 'broadcast_buffers')
        return DistributedDataParallel(model, device_ids=ids, **{sync: False})

    # -- collectives ---------------------------------------------------------
    def _device(self) -> torch.device:
        if self.backend == 'nccl':
            return torch.device('cuda', torch.cuda.current_device())
        return torch.device('cpu')

    def mean(self, value: Tensor) -> Tensor:
        """The mean of a scalar tensor over processes (detached)."""
        if not self.enabled:
            return value
        t = value.detach().to(self._device(), torch.float64).clone()
        dist.all_reduce(t)
        return t / self.world_size

    def sum(self, *values: float) -> List[float]:
        """Sums of numbers over processes (in float64)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (any picklable object) on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: List[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def average_batchnorm_stats(self, model: nn.Module) -> None:
        """Replaces every BatchNorm's running mean and variance by their
        average over processes."""
        if not self.enabled:
            return
        bufs = [b for m in model.modules()
                if isinstance(m, _BATCHNORMS) and m.running_mean is not None
                for b in (m.running_mean, m.running_var)]
        if not bufs:
            return
        flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in bufs])
        flat = flat.to(self._device())
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        with torch.no_grad():
            for b in bufs:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()

    def check_masks(self, model: nn.Module, epoch: int) -> List[str]:
        r"""Every rank's :func:`mask_digest`.

        Raises:
            RuntimeError: If the ranks hold different masks (the selection
                was not deterministic).
        """
        if not self.enabled:
            return [mask_digest(model)]
        digests = self.gather(mask_digest(model))
        if len(set(digests)) > 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(
                f"After epoch {epoch} the pruning masks of rank(s) {differ} "
                f"differ from rank 0's: mask selection was not deterministic "
                f"across processes. Train in one process, or report this "
                f"with the device and pruning method")
        return digests

    # -- checkpoints -----------------------------------------------------------
    def rank_rng(self, states: Dict[str, Any]) -> Dict[str, Any]:
        """``{'rank_rng': [every rank's RNG states]}`` for the checkpoint
        (empty for one process)."""
        if not self.enabled:
            return {}
        return dict(rank_rng=self.gather(states))

    def own_rng(self, training: Dict[str, Any]) -> Dict[str, Any]:
        """This rank's RNG states from a checkpoint's training state."""
        if not self.enabled:
            return training['rng']
        return training['rank_rng'][self.rank]

    def describe(self, model: nn.Module) -> Dict[str, Any]:
        """``{'distributed': {world_size, backend, mask_digests}}`` for
        ``metrics.json``, with every rank's :func:`mask_digest` (empty for
        one process). Every rank must call it."""
        if not self.enabled:
            return {}
        digests = self.gather(mask_digest(model))
        return dict(distributed=dict(world_size=self.world_size,
                                     backend=self.backend,
                                     mask_digests=digests))
