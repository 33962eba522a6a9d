r"""The training loop: :func:`train`, whose epochs are three named steps,
:func:`train_epoch`, :func:`evaluate_epoch` and :func:`save_epoch`.

Per epoch: shuffle the training split (a seeded generator), and for every
batch ask the pruner to update its masks (``pruner.step``), run the forward
pass, add the pruner's penalty to the cross-entropy loss, step the optimizer
and the per-iteration learning-rate schedule. Then evaluate on the validation
split (if any) and the test split,
append a row to the history and write a checkpoint. Pruning itself lives in
:mod:`tcmp_pyg.pruning`; the loop only calls the hook protocol
(``setup`` / ``step`` / ``penalty`` / ``finalize``).

A run folder (``out_dir``) holds:

- ``model.pt``: the checkpoint of the last finished epoch (see
  :mod:`tcmp_pyg.checkpoint`); calling :func:`train` again with the same
  folder resumes from it, and a finished run is not trained again;
- ``model.prev.pt``: the checkpoint of the epoch before, resumed from (with a
  warning) if ``model.pt`` turns out corrupt;
- ``history.json`` and ``history.csv``: one row per epoch;
- ``metrics.json``: the result, written once the run is finished.

With ``tensorboard_dir`` (``tcmp-pyg train --tensorboard`` uses
``OUT/tensorboard``) every epoch's scalars also go to TensorBoard, the
per-layer kept / live / dead counts of a pruned run included
(:func:`log_epoch`).

The result is the test accuracy of the *last* epoch, never the best one
(choosing the best epoch on the test split would overstate accuracy).

In a process group (``tcmp-pyg train --nproc N`` or ``torchrun``; see
:mod:`tcmp_pyg.distributed`) the same function trains with
DistributedDataParallel: ``batch_size`` is the global batch, split across the
processes, and only rank 0 writes the run folder.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import os.path as osp
import random
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from tcmp_pyg.checkpoint import (atomic_write, model_description,
                                 read_resume_checkpoint, save_checkpoint)
from tcmp_pyg.distributed import DistributedContext
from tcmp_pyg.pruning import connectivity

OPTIMIZERS = ('sgd', 'adamw')
SCHEDULES = ('cosine', 'step')
CHECKPOINT_NAME = 'model.pt'

# Settings that may change when a run is resumed: they do not change what is
# computed (on the same device type).
_RESUMABLE_CHANGES = ('device', 'progress')


@dataclass
class TrainConfig:
    r"""Settings of a training run. The defaults suit the compact ST-GCN on
    SBU (2.5 to 6.5 minutes of training on two CPU cores, by machine;
    accuracies per fold, seed, number of epochs and augmentation in
    ``benchmarks/RESULTS.md``); AttentionGCN
    needs a lower ``lr`` (0.01: at 0.1 it stays at chance).

    Args:
        epochs (int): Passes over the training split. (default: :obj:`100`)
        batch_size (int): Sequences per batch. (default: :obj:`16`)
        lr (float): Peak learning rate (after the warm-up).
            (default: :obj:`0.1`)
        optimizer (str): :obj:`'sgd'` (Nesterov momentum) or
            :obj:`'adamw'`. (default: :obj:`'sgd'`)
        momentum (float): SGD momentum. (default: :obj:`0.9`)
        weight_decay (float): L2 penalty (SGD) or decoupled weight decay
            (AdamW), on every parameter. (default: :obj:`5e-4`)
        schedule (str): :obj:`'cosine'` (to zero at the last step) or
            :obj:`'step'` (times ``gamma`` at each of ``milestones``).
            (default: :obj:`'cosine'`)
        warmup (float): Epochs of linear warm-up. (default: :obj:`5.0`)
        milestones (Sequence[float]): Fractions of training where the step
            schedule decays. (default: :obj:`(0.5, 0.75)`)
        gamma (float): Decay of the step schedule. (default: :obj:`0.1`)
        label_smoothing (float): Weight of the uniform distribution mixed
            into the training targets (evaluation uses the plain
            cross-entropy). (default: :obj:`0.0`)
        seed (int): Seeds python, numpy, torch and the shuffling generator.
            (default: :obj:`0`)
        device (str): :obj:`'cpu'`, :obj:`'cuda'`, ... (default: :obj:`'cpu'`)
        eval_batch_size (int): Sequences per batch when evaluating.
            (default: :obj:`64`)
        progress (bool): Show a progress bar per epoch. (default: :obj:`True`)
    """
    epochs: int = 100
    batch_size: int = 16
    lr: float = 0.1
    optimizer: str = 'sgd'
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = 'cosine'
    warmup: float = 5.0
    milestones: Sequence[float] = (0.5, 0.75)
    gamma: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = 'cpu'
    eval_batch_size: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ('epochs', 'batch_size', 'eval_batch_size'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected '{name}' to be an integer >= 1 "
                                 f"(got {value!r})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Expected 'optimizer' to be one of {OPTIMIZERS} "
                             f"(got {self.optimizer!r})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Expected 'schedule' to be one of {SCHEDULES} "
                             f"(got {self.schedule!r})")
        if not self.lr > 0 or math.isinf(self.lr):
            raise ValueError(f"Expected 'lr' > 0 (got {self.lr})")
        if self.weight_decay < 0 or self.warmup < 0:
            raise ValueError(f"Expected 'weight_decay' and 'warmup' >= 0 (got "
                             f"{self.weight_decay}, {self.warmup})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"Expected 'label_smoothing' in [0, 1) (got "
                             f"{self.label_smoothing})")
        self.milestones = tuple(float(m) for m in self.milestones)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d['milestones'] = list(self.milestones)
        return d


class Evaluation(NamedTuple):
    """Result of :func:`evaluate`."""
    loss: float
    accuracy: float
    correct: int
    total: int


@dataclass
class TrainResult:
    r"""Result of :func:`train`.

    Attributes:
        test_accuracy: Test accuracy after the last epoch, in ``[0, 1]``.
        epochs: Epochs trained (over all sessions of a resumed run).
        train_time_s: Seconds spent in training steps (evaluation excluded).
        history: One dict per epoch (``epoch``, ``lr``, ``train_loss``,
            ``train_acc``, ``test_loss``, ``test_acc``, ``train_time_s``,
            ``eval_time_s``; with a validation split ``val_loss``,
            ``val_acc``; with a pruner ``kept``, ``live``, ``dead``).
        connectivity: With a pruner, the final connectivity report as
            :meth:`~tcmp_pyg.pruning.ConnectivityReport.to_dict` (else
            :obj:`None`).
        resumed_from: Epoch of the checkpoint the run resumed from (0 for a
            fresh run).
        samples_per_s: Training sequences per second of training time.
        val_accuracy: Validation accuracy after the last epoch (:obj:`None`
            without a validation split).
    """
    test_accuracy: float
    epochs: int
    train_time_s: float
    history: List[Dict[str, Any]]
    connectivity: Optional[Dict[str, Any]] = None
    resumed_from: int = 0
    samples_per_s: float = 0.0
    val_accuracy: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int,
              schedule: str = 'cosine', milestones: Sequence[float] = (0.5, 0.75),
              gamma: float = 0.1) -> float:
    r"""Multiplier of the peak learning rate at iteration ``step`` (0-based).

    A linear warm-up from ``1 / warmup_steps`` to 1 over the first
    ``warmup_steps`` iterations, then either a cosine decay
    :math:`\frac{1}{2}(1 + \cos(\pi p))` with :math:`p` the progress after the
    warm-up (zero at ``total_steps``), or a step decay by ``gamma`` at each
    milestone (a fraction of ``total_steps``).

    Args:
        step (int): The iteration.
        total_steps (int): Iterations of the whole run.
        warmup_steps (int): Iterations of warm-up.
        schedule (str, optional): :obj:`'cosine'` or :obj:`'step'`.
        milestones (Sequence[float], optional): Step schedule only.
        gamma (float, optional): Step schedule only.

    Returns:
        The multiplier, in ``[0, 1]``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == 'cosine':
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    passed = sum(step >= round(m * total_steps) for m in milestones)
    return gamma ** passed


def seed_everything(seed: int) -> None:
    """Seeds python's, numpy's and torch's global random generators (CUDA
    included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states(loader_generator: torch.Generator) -> Dict[str, Any]:
    """Every random state a run draws from, as tensors and plain data (for a
    ``weights_only`` checkpoint)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(python=random.getstate(), torch=torch.get_rng_state(),
                  numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)),
                             pos=int(pos), has_gauss=int(has_gauss),
                             gauss=float(gauss)),
                  loader=loader_generator.get_state())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Dict[str, Any], loader_generator: torch.Generator) -> None:
    """Restores what :func:`rng_states` saved."""
    python = states['python']
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(states['torch'])
    n = states['numpy']
    np.random.set_state((n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['gauss']))
    loader_generator.set_state(states['loader'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@torch.no_grad()
def evaluate(model: nn.Module, loader: Union[DataLoader, Sequence[DataLoader]],
             device: Any = 'cpu') -> Evaluation:
    r"""Mean cross-entropy and accuracy of ``model`` over ``loader``, in eval
    mode (the model's previous mode is restored).

    Args:
        model (nn.Module): Maps a PyG batch to logits ``[B, num_classes]``.
        loader (DataLoader or list of DataLoader): Batches of the split to
            evaluate, or unshuffled loaders over views of the same sequences
            (e.g. :func:`~tcmp_pyg.datasets.body_order_views`): then each
            sequence's predicted probabilities are averaged over the views,
            and the loss is the cross-entropy of that average.
        device (str or torch.device, optional): Where batches go.
            (default: :obj:`'cpu'`)

    Returns:
        :class:`Evaluation` (``loss``, ``accuracy``, ``correct``, ``total``).
    """
    loaders = list(loader) if isinstance(loader, (list, tuple)) else [loader]
    if not loaders:
        raise ValueError("Expected at least one loader to evaluate")
    sizes = {len(item.dataset) for item in loaders}
    if len(sizes) > 1:
        raise ValueError(f"Expected views of the same sequences (got loaders "
                         f"over {sorted(sizes)} sequences)")
    was_training = model.training
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    for batches in zip(*loaders):
        y = batches[0].y.to(device)
        if len(batches) == 1:
            logits = model(batches[0].to(device))
            loss_sum += float(F.cross_entropy(logits, y, reduction='sum'))
        else:
            for view in batches[1:]:
                if not torch.equal(view.y.to(device), y):
                    raise ValueError("Expected views of the same sequences in "
                                     "the same order (their labels differ)")
            probs = torch.stack([model(b.to(device)).softmax(dim=-1)
                                 for b in batches]).mean(dim=0)
            logits = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
            loss_sum += float(F.nll_loss(logits, y, reduction='sum'))
        correct += int((logits.argmax(dim=-1) == y).sum())
        total += int(y.numel())
    model.train(was_training)
    if total == 0:
        raise ValueError("Expected a non-empty evaluation split (got 0 "
                         "sequences)")
    return Evaluation(loss_sum / total, correct / total, correct, total)


def dataset_labels(dataset: Any) -> Tensor:
    """The labels of a dataset: its ``meta('y')`` when it has one (skeleton
    datasets, no sample is loaded), else the ``y`` of every sample."""
    if callable(getattr(dataset, 'meta', None)):
        return dataset.meta('y').view(-1)
    return torch.cat([data.y.view(-1) for data in dataset])


def check_labels(dataset: Any, num_classes: int, split: str) -> None:
    """Raises a :class:`ValueError` if a label of ``dataset`` is outside
    ``0 .. num_classes - 1``."""
    y = dataset_labels(dataset)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"The {split} split has labels in {int(y.min())}..{int(y.max())} "
            f"but the model predicts {num_classes} classes (0.."
            f"{num_classes - 1}). Build the model with num_classes="
            f"{max(int(y.max()) + 1, num_classes)} or check the dataset.")


def write_history(out_dir: str, history: List[Dict[str, Any]]) -> None:
    """Writes ``history.json`` and ``history.csv`` (one row per epoch)."""
    atomic_write(osp.join(out_dir, 'history.json'),
                 json.dumps(history, indent=1) + '\n')
    columns: List[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator='\n')
    writer.writeheader()
    writer.writerows(history)
    atomic_write(osp.join(out_dir, 'history.csv'), buf.getvalue())


def summary_writer_class() -> type:
    """:class:`torch.utils.tensorboard.SummaryWriter`, or an
    :class:`ImportError` that says to install ``tensorboard``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(f"TensorBoard logging needs the tensorboard package "
                          f"({e}): pip install tensorboard") from e
    return SummaryWriter


def log_epoch(writer: Any, row: Dict[str, Any],
              report: Optional[Dict[str, Any]] = None) -> None:
    r"""Writes one epoch's scalars to a TensorBoard ``SummaryWriter`` (step =
    epoch) and flushes them, so a running or crashed run shows every finished
    epoch.

    Tags: ``train/loss``, ``train/acc``, ``test/loss``, ``test/acc``, ``lr``;
    with a connectivity ``report`` (:meth:`ConnectivityReport.to_dict()
    <tcmp_pyg.pruning.ConnectivityReport.to_dict>`) also ``kept/<layer>``,
    ``live/<layer>``, ``dead/<layer>`` for every prunable layer and
    ``<count>/total``, ``sparsity/nominal``, ``sparsity/effective`` and
    ``outputs/reachable`` (class logits reachable from the input).

    Args:
        writer (SummaryWriter): Where the scalars go.
        row (dict): The epoch's history row (see :class:`TrainResult`).
        report (dict, optional): The epoch's connectivity report.
    """
    step = row['epoch']
    for tag, key in (('train/loss', 'train_loss'), ('train/acc', 'train_acc'),
                     ('test/loss', 'test_loss'), ('test/acc', 'test_acc'),
                     ('lr', 'lr')):
        writer.add_scalar(tag, row[key], step)
    if report is not None:
        for count in ('kept', 'live', 'dead'):
            writer.add_scalar(f'{count}/total', report[count], step)
            for layer in report['layers']:
                writer.add_scalar(f"{count}/{layer['name']}", layer[count], step)
        writer.add_scalar('sparsity/nominal', report['nominal_sparsity'], step)
        writer.add_scalar('sparsity/effective', report['effective_sparsity'], step)
        writer.add_scalar('outputs/reachable', report['reachable_outputs'], step)
    writer.flush()


def _result(history: List[Dict[str, Any]], report: Optional[Dict[str, Any]],
            num_train: int, resumed_from: int) -> TrainResult:
    train_time = sum(row['train_time_s'] for row in history)
    return TrainResult(test_accuracy=history[-1]['test_acc'], epochs=len(history),
                       train_time_s=train_time, history=history,
                       connectivity=report, resumed_from=resumed_from,
                       samples_per_s=num_train * len(history) / max(train_time, 1e-9),
                       val_accuracy=history[-1].get('val_acc'))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW over every parameter of ``model``,
    as ``config`` says."""
    if config.optimizer == 'sgd':
        return torch.optim.SGD(model.parameters(), lr=config.lr,
                               momentum=config.momentum, nesterov=True,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr,
                             weight_decay=config.weight_decay)


def _differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """``'config.lr: 0.05 -> 0.1'``-style lines for the settings that differ."""
    out = []
    defaults = TrainConfig().to_dict()  # settings added after a run was saved
    for key in list(current) + [k for k in saved if k not in current]:
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and key == 'config':
            old = {**defaults, **old}
            out += [f'config.{k}: {old.get(k)!r} -> {new[k]!r}'
                    for k in new if old.get(k) != new[k]]
        elif key == 'world_size' and old != new:
            out.append(f'processes: {old or 1} -> {new or 1}')
        elif old != new:
            out.append(key)
    return out


class _Loop(NamedTuple):
    """What every step of a run shares."""
    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    pruner: Any
    config: TrainConfig
    device: torch.device
    ctx: DistributedContext
    path: Optional[str]


def _interactive() -> bool:
    return sys.stderr.isatty()


def _progress_line(row: Dict[str, Any], epochs: int) -> str:
    """One epoch's summary, printed instead of a progress bar when the
    output is not a terminal (a log file, CI, ``| tee``)."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.3f}",
             f"acc {row['train_acc']:.3f}"]
    if 'val_acc' in row:
        parts.append(f"val_acc {row['val_acc']:.3f}")
    parts.append(f"test_acc {row['test_acc']:.3f}")
    return ', '.join(parts) + f" ({row['train_time_s']:.1f} s)"


def train_epoch(loop: _Loop, epoch: int) -> Dict[str, Any]:
    r"""One pass over the training split: per batch the pruner's mask update,
    the forward pass, the loss (cross-entropy plus the pruner's penalty), the
    optimizer and learning-rate steps.

    Returns:
        The epoch's ``lr``, ``train_loss``, ``train_acc`` and
        ``train_time_s`` (summed over the processes of a group).

    Raises:
        FloatingPointError: If the loss is not finite (names the epoch, the
            step and the checkpoint kept).
    """
    config, ctx, pruner = loop.config, loop.ctx, loop.pruner
    steps_per_epoch = len(loop.loader)
    loop.model.train()
    ctx.set_epoch(loop.loader, epoch)
    loss_sum, correct, seen = 0.0, 0, 0
    # A bar redrawn in place only makes sense on a terminal, and it gives way
    # to the one line per epoch that train() prints (in logs too).
    bar = tqdm(loop.loader, desc=f'epoch {epoch}/{config.epochs}', unit='batch',
               leave=False,
               disable=not (config.progress and ctx.is_main and _interactive()))
    lr = loop.optimizer.param_groups[0]['lr']
    start = time.perf_counter()
    for i, batch in enumerate(bar):
        global_step = (epoch - 1) * steps_per_epoch + i
        batch = batch.to(loop.device)
        if pruner is not None:
            pruner.step(global_step)
        logits = loop.net(batch)
        loss = F.cross_entropy(logits, batch.y,
                               label_smoothing=config.label_smoothing)
        penalty = pruner.penalty() if pruner is not None else None
        if penalty is not None:
            loss = loss + penalty
        lr = loop.optimizer.param_groups[0]['lr']
        # Every rank stops together when any rank's loss is not finite.
        checked = ctx.mean(loss)  # the loss itself in one process
        if not torch.isfinite(checked):
            if loop.path is None:
                kept = ''
            elif epoch > 1:
                kept = f" The checkpoint of epoch {epoch - 1} ('{loop.path}') is kept."
            else:
                kept = ' No checkpoint was written yet.'
            raise FloatingPointError(
                f"Training diverged: the loss is {checked.item()} at epoch "
                f"{epoch}, step {i + 1} of {steps_per_epoch} (global step "
                f"{global_step}).{kept} Lower the learning rate (now "
                f"{lr:.3g}) or check the data for NaN/inf values.")
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        loop.scheduler.step()
        # Statistics without a sync per step would need a buffer; the
        # float() below is cheap next to a training step.
        n = batch.num_graphs
        loss_sum += loss.item() * n
        correct += int((logits.argmax(dim=-1) == batch.y).sum())
        seen += n
        bar.set_postfix(loss=f'{loss_sum / seen:.3f}', acc=f'{correct / seen:.3f}')
    if pruner is not None and epoch == config.epochs:
        pruner.finalize()
    train_time = time.perf_counter() - start
    bar.close()
    loss_sum, correct, seen = ctx.sum(loss_sum, correct, seen)
    ctx.average_batchnorm_stats(loop.model)
    ctx.check_masks(loop.model, epoch)  # identical on every rank
    return dict(lr=lr, train_loss=loss_sum / seen, train_acc=correct / seen,
                train_time_s=train_time)


def evaluate_epoch(loop: _Loop, test_loader: List[DataLoader],
                   val_loader: Optional[List[DataLoader]]
                   ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    r"""The end-of-epoch evaluation: validation (if any) and test loss and
    accuracy, and with a pruner the connectivity of the masks.

    Returns:
        ``(columns, report)``: the history columns (``val_loss``,
        ``val_acc``, ``test_loss``, ``test_acc``, with a pruner ``kept``,
        ``live``, ``dead``; ``eval_time_s``) and the connectivity report as
        a dict (:obj:`None` without a pruner).
    """
    start = time.perf_counter()
    columns: Dict[str, Any] = {}
    if val_loader is not None:
        val = evaluate(loop.model, val_loader, loop.device)
        columns.update(val_loss=val.loss, val_acc=val.accuracy)
    test = evaluate(loop.model, test_loader, loop.device)
    columns.update(test_loss=test.loss, test_acc=test.accuracy)
    report = None
    if loop.pruner is not None:
        report = connectivity(loop.model).to_dict()
        columns.update(kept=report['kept'], live=report['live'],
                       dead=report['dead'])
    columns['eval_time_s'] = time.perf_counter() - start
    return columns, report


def _views(dataset: Any, split: str) -> List[Any]:
    """An evaluation split as a list of its views (one for a plain dataset)."""
    if not isinstance(dataset, (list, tuple)):
        return [dataset]
    views = list(dataset)
    if not views or len({len(v) for v in views}) > 1:
        raise ValueError(f"Expected the {split} views to be a non-empty list of "
                         f"datasets of the same length (got lengths "
                         f"{[len(v) for v in views]})")
    return views


def save_epoch(loop: _Loop, out_dir: str, epoch: int, settings: Dict[str, Any],
               history: List[Dict[str, Any]], loader_generator: torch.Generator,
               meta: Dict[str, Any]) -> None:
    """Writes the checkpoint (the previous one kept as ``model.prev.pt``)
    and the history of a finished epoch; rank 0 writes, every rank's random
    state is stored."""
    training = dict(epoch=epoch, settings=settings, history=history,
                    optimizer=loop.optimizer.state_dict(),
                    scheduler=loop.scheduler.state_dict(),
                    pruner=loop.pruner.state_dict() if loop.pruner is not None else None,
                    rng=rng_states(loader_generator))
    training.update(loop.ctx.rank_rng(training['rng']))  # every rank's
    if loop.ctx.is_main:
        save_checkpoint(loop.path, loop.model, meta=meta, training=training,
                        keep_previous=True)
        write_history(out_dir, history)


def train(model: nn.Module, train_dataset: Any, test_dataset: Any,
          config: Optional[TrainConfig] = None, *, val_dataset: Any = None,
          pruner: Any = None,
          out_dir: Optional[str] = None, meta: Optional[Dict[str, Any]] = None,
          on_epoch_end: Optional[Callable[[Dict[str, Any]], None]] = None,
          tensorboard_dir: Optional[str] = None,
          final_metrics: Optional[Callable[[nn.Module], Dict[str, Any]]] = None,
          ) -> TrainResult:
    r"""Trains ``model`` with cross-entropy, optionally pruning it.

    The run is reproducible: the same seed gives the same run on CPU (seed the
    global RNG before building the model so that its initialisation is
    reproducible too). With ``out_dir``, a checkpoint is written after every
    epoch and calling :func:`train` again with the same arguments resumes
    from it: the resumed run is identical to an uninterrupted one (on CPU).

    Each epoch is :func:`train_epoch`, :func:`evaluate_epoch` and
    :func:`save_epoch`. With ``val_dataset`` (see ``val_fraction`` of
    :func:`tcmp_pyg.datasets.dataset_splits`) the validation loss and
    accuracy are logged beside the test ones: choices between runs are made on
    them, never on the test split.

    If a ``torch.distributed`` process group is initialised (see
    :mod:`tcmp_pyg.distributed`), every process of the group calls
    :func:`train` with the same arguments (``config.device`` being its own
    device) and the model is trained with DistributedDataParallel on
    ``config.batch_size / world_size`` sequences per process and step.

    Args:
        model (nn.Module): Maps a PyG batch to logits ``[B, num_classes]``
            and has ``num_classes`` (and ``config()`` to be checkpointed).
        train_dataset: The training split (a dataset of PyG ``Data``; its
            transform may augment).
        test_dataset: The test split, or a list of views of it whose
            predictions are averaged (e.g.
            :func:`~tcmp_pyg.datasets.body_order_views`; see
            :func:`evaluate`).
        config (TrainConfig, optional): Settings. (default: the defaults of
            :class:`TrainConfig`)
        val_dataset (optional): A validation split, held out of the training
            data, or a list of views of it. (default: :obj:`None`)
        pruner (PruningMethod, optional): Built on ``model`` (see
            :func:`tcmp_pyg.pruning.make_pruner`); the loop calls
            ``setup(total_steps)``, ``step(global_step)`` before every forward
            pass, adds ``penalty()`` to the loss and calls ``finalize()``
            after the last step. (default: :obj:`None`)
        out_dir (str, optional): Run folder (checkpoint, history, metrics).
            (default: :obj:`None`, nothing is written)
        meta (dict, optional): Plain data stored in the checkpoint and in
            ``metrics.json`` (dataset name, root, options, class names,
            command-line arguments); its ``init_from`` (the checkpoint the
            weights started from) must match to resume. (default: :obj:`None`)
        on_epoch_end (callable, optional): Called with each epoch's history
            row once its checkpoint is written (on rank 0 only in a process
            group). (default: :obj:`None`)
        tensorboard_dir (str, optional): Also write every epoch's scalars
            there for TensorBoard (see :func:`log_epoch`; needs the
            ``tensorboard`` package). (default: :obj:`None`)
        final_metrics (callable, optional): Maps the trained model to more
            entries of ``metrics.json`` (e.g. its costs). They are written
            with the rest, in one step, so that a run killed at the end never
            leaves a ``metrics.json`` that a sweep takes for finished and
            complete while it lacks them. (default: :obj:`None`)

    Returns:
        :class:`TrainResult` (last-epoch test and validation accuracy,
        epochs, training time, history, final connectivity).

    Raises:
        FloatingPointError: If the loss becomes NaN or infinite (the message
            names the epoch and step; the last checkpoint is kept).
        ValueError: If a label is outside the model's classes, or ``out_dir``
            holds a run with other settings (or another number of processes).
        CheckpointError: If ``out_dir``'s checkpoint is corrupt and there is
            no readable previous one.
    """
    config = config or TrainConfig()
    # Checked first: a missing tensorboard fails now, not after an epoch.
    writer_class = summary_writer_class() if tensorboard_dir else None
    meta = dict(meta or {})
    device = torch.device(config.device)
    if pruner is not None and getattr(pruner, 'model', model) is not model:
        raise ValueError("Expected the pruner to be built on the model being "
                         "trained (pruner.model is another module)")
    test_views = _views(test_dataset, 'test')
    val_views = _views(val_dataset, 'validation') if val_dataset is not None else None
    splits = [('training', train_dataset), ('test', test_views[0])]
    if val_views is not None:
        splits.append(('validation', val_views[0]))
    for split, dataset in splits:
        if len(dataset) == 0:
            raise ValueError(f"Expected a non-empty {split} split (got 0 "
                             f"sequences)")
    num_classes = getattr(model, 'num_classes', None)
    if num_classes is not None:
        for split, dataset in splits:
            check_labels(dataset, num_classes, split)

    # Data: the training order comes from its own generator, so that it can be
    # saved and restored; augmentation and dropout draw from the global RNG.
    # With several processes (see tcmp_pyg.distributed) each rank draws its
    # own augmentation and dropout, and its share of every global batch.
    ctx = DistributedContext.current()
    seed_everything(config.seed + ctx.rank)
    loader_generator = torch.Generator().manual_seed(config.seed)
    train_loader = ctx.train_loader(train_dataset, config.batch_size,
                                    loader_generator, seed=config.seed)
    test_loader = [DataLoader(d, batch_size=config.eval_batch_size)
                   for d in test_views]
    val_loader = ([DataLoader(d, batch_size=config.eval_batch_size)
                   for d in val_views] if val_views is not None else None)
    steps_per_epoch = len(train_loader)
    total_steps = config.epochs * steps_per_epoch

    model.to(device)
    optimizer = make_optimizer(model, config)
    schedule = partial(lr_factor, total_steps=total_steps,
                       warmup_steps=round(config.warmup * steps_per_epoch),
                       schedule=config.schedule, milestones=config.milestones,
                       gamma=config.gamma)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if pruner is not None:
        pruner.setup(total_steps)

    # What must match for a checkpoint to belong to this run.
    settings = dict(config={k: v for k, v in config.to_dict().items()
                            if k not in _RESUMABLE_CHANGES},
                    model=model_description(model) if out_dir else None,
                    pruner=repr(pruner) if pruner is not None else None,
                    num_train=len(train_dataset), num_test=len(test_views[0]))
    if val_views is not None:  # runs saved before validation existed match
        settings['num_val'] = len(val_views[0])
    if len(test_views) > 1 or (val_views is not None and len(val_views) > 1):
        settings['views'] = [len(test_views), len(val_views or ())]
    if ctx.enabled:  # the data order and BatchNorm statistics depend on it
        settings['world_size'] = ctx.world_size
    if (meta or {}).get('init_from') is not None:  # the weights it started from
        settings['init_from'] = str(meta['init_from'])
    history: List[Dict[str, Any]] = []
    start_epoch = 0
    path = osp.join(out_dir, CHECKPOINT_NAME) if out_dir else None
    # Rank 0 reads the checkpoint (falling back on the previous one if it is
    # corrupt) and hands it to the other ranks.
    found = read_resume_checkpoint(path) if path is not None and ctx.is_main else None
    checkpoint, path_read = ctx.broadcast(found) or (None, None)
    if checkpoint is not None:
        state = checkpoint.get('training')
        if state is None:
            raise ValueError(f"'{path_read}' holds a model but no training state, so "
                             f"the run cannot resume; use another out_dir")
        if state['settings'] != settings:
            changed = _differences(state['settings'], settings)
            raise ValueError(
                f"'{out_dir}' holds a run with other settings ("
                f"{', '.join(changed)}); resume it with the same settings, or "
                f"use another out_dir for a new run")
        model.load_state_dict(checkpoint['state_dict'], strict=True)
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        if pruner is not None:
            pruner.load_state_dict(state['pruner'])
        set_rng_states(ctx.own_rng(state), loader_generator)
        history = list(state['history'])
        start_epoch = state['epoch']
    resumed_from = start_epoch
    if out_dir is not None and ctx.is_main:
        os.makedirs(out_dir, exist_ok=True)

    report: Optional[Dict[str, Any]] = None
    writer = (writer_class(tensorboard_dir)
              if writer_class is not None and start_epoch < config.epochs
              and ctx.is_main else None)
    loop = _Loop(model=model, net=ctx.wrap(model, device), loader=train_loader,
                 optimizer=optimizer, scheduler=scheduler, pruner=pruner,
                 config=config, device=device, ctx=ctx, path=path)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        trained = train_epoch(loop, epoch)
        columns, report = evaluate_epoch(loop, test_loader, val_loader)
        row: Dict[str, Any] = dict(epoch=epoch)
        for key in ('lr', 'train_loss', 'train_acc', 'val_loss', 'val_acc',
                    'test_loss', 'test_acc', 'train_time_s', 'kept', 'live',
                    'dead', 'eval_time_s'):
            if key in trained or key in columns:
                row[key] = trained[key] if key in trained else columns[key]
        history.append(row)
        if config.progress and ctx.is_main:
            tqdm.write(_progress_line(row, config.epochs), file=sys.stderr)
        if out_dir is not None:
            save_epoch(loop, out_dir, epoch, settings, history, loader_generator,
                       meta)
        if writer is not None:
            log_epoch(writer, row, report)
        if on_epoch_end is not None and ctx.is_main:
            on_epoch_end(row)
    if writer is not None:
        writer.close()

    if pruner is not None and report is None:  # a finished run, loaded
        report = connectivity(model).to_dict()
    result = _result(history, report, len(train_dataset), resumed_from)
    distributed = ctx.describe(model)  # world size, every rank's mask digest
    if out_dir is not None and ctx.is_main:
        metrics = dict(test_accuracy=result.test_accuracy, epochs=result.epochs,
                       train_time_s=result.train_time_s,
                       samples_per_s=result.samples_per_s,
                       train_accuracy=history[-1]['train_acc'],
                       train_loss=history[-1]['train_loss'],
                       test_loss=history[-1]['test_loss'],
                       connectivity=report, config=config.to_dict(), **meta,
                       **distributed)
        if result.val_accuracy is not None:
            metrics.update(val_accuracy=result.val_accuracy,
                           val_loss=history[-1]['val_loss'],
                           num_val=len(val_views[0]))
        if final_metrics is not None:
            metrics.update(final_metrics(model))
        atomic_write(osp.join(out_dir, 'metrics.json'),
                     json.dumps(metrics, indent=1) + '\n')
    return result
