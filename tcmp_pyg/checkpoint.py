"""Checkpoints: an architecture description plus a ``state_dict``, never
pickled classes.

A checkpoint file is a plain dictionary saved with :func:`torch.save` and read
back with ``torch.load(weights_only=True)``, which refuses any pickled object
other than tensors and plain data::

    {'format': 'tcmp_pyg.checkpoint', 'version': 1,
     'model': {'class_name': 'STGCN', 'config': {...}},   # model.config()
     'meta': {...},            # dataset name, root, options, class names, ...
     'state_dict': {...},      # weights, masks and gates
     'training': {...}}        # optional: what resuming a run needs

:func:`load_model` rebuilds the model from its class name and ``config()``
and loads the state dict strictly, so masks and gates come back exactly and
a mismatch is an error, never a silent partial load.
"""
from __future__ import annotations

import io
import os
import os.path as osp
import pickle
import shutil
import tempfile
import warnings
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from tcmp_pyg.nn.models import model_from_config
from tcmp_pyg.nn.prunable import ChannelGate, PrunableModule

CHECKPOINT_FORMAT = 'tcmp_pyg.checkpoint'
CHECKPOINT_VERSION = 1

PathLike = Union[str, 'os.PathLike[str]']


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, unsafe or does not match its
    model."""


def _check_plain(value: Any, where: str) -> None:
    # weights_only loading accepts tensors and plain containers only, so check
    # before writing: an unloadable checkpoint is found now, not at resume.
    if value is None or isinstance(value, (bool, int, float, str, Tensor)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"Expected the keys of '{where}' to be strings "
                                f"or ints (got {type(key).__name__})")
            _check_plain(item, f'{where}.{key}')
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f'{where}[{i}]')
        return
    raise TypeError(f"Expected '{where}' to hold only tensors and plain data "
                    f"(dict, list, tuple, str, int, float, bool, None) so that "
                    f"it loads with weights_only=True (got "
                    f"{type(value).__name__})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, data: Union[bytes, str]) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder
    and :func:`os.replace`: readers see the old file or the new one, never a
    half-written one (e.g. when a run is killed while saving)."""
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates owner-only files
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def model_description(model: nn.Module) -> Dict[str, Any]:
    """``{'class_name': ..., 'config': model.config()}``: what
    :func:`~tcmp_pyg.nn.model_from_config` needs to rebuild ``model``."""
    if not callable(getattr(model, 'config', None)):
        raise TypeError(f"Expected a model with a config() method describing "
                        f"its constructor arguments (got "
                        f"{type(model).__name__})")
    return dict(class_name=type(model).__name__, config=model.config())


def previous_checkpoint_path(path: PathLike) -> str:
    """Where :func:`save_checkpoint` with ``keep_previous`` keeps the
    checkpoint it replaces: ``model.pt`` -> ``model.prev.pt``."""
    root, ext = osp.splitext(os.fspath(path))
    return f'{root}.prev{ext}'


def _keep_previous(path: str) -> None:
    # A hard link (or a copy) under a temporary name, then os.replace: at
    # every instant both names hold a complete checkpoint.
    prev = previous_checkpoint_path(path)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(osp.abspath(path)),
                               prefix=f'.{osp.basename(prev)}.', suffix='.tmp')
    os.close(fd)
    os.remove(tmp)
    try:
        try:
            os.link(path, tmp)
        except OSError:  # no hard links on this file system
            shutil.copyfile(path, tmp)
        os.replace(tmp, prev)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(path: PathLike, model: nn.Module, *,
                    meta: Optional[Dict[str, Any]] = None,
                    training: Optional[Dict[str, Any]] = None,
                    keep_previous: bool = False) -> None:
    r"""Writes ``model`` (architecture and ``state_dict``) to ``path``
    atomically: a temporary file in the same folder, then :func:`os.replace`,
    so an interrupted write never leaves a half-written checkpoint.

    Args:
        path (str): The checkpoint file.
        model (nn.Module): A model with a ``config()`` method
            (:class:`~tcmp_pyg.nn.STGCN`, :class:`~tcmp_pyg.nn.AttentionGCN`,
            the compact models).
        meta (dict, optional): Plain data stored with the model (dataset
            name, root, options, class names, ...).
        training (dict, optional): Plain data and tensors needed to resume
            training (optimizer, scheduler, pruner, RNG states, history).
        keep_previous (bool, optional): Keep the checkpoint that ``path``
            held as :func:`previous_checkpoint_path` (``model.prev.pt``), the
            fallback of :func:`read_resume_checkpoint`.
            (default: :obj:`False`)
    """
    path = os.fspath(path)
    checkpoint = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                      model=model_description(model), meta=dict(meta or {}),
                      state_dict=model.state_dict())
    if training is not None:
        checkpoint['training'] = training
    _check_plain(checkpoint, 'checkpoint')
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    if keep_previous and osp.isfile(path):
        _keep_previous(path)
    atomic_write(path, buf.getvalue())


def _unpickler_reason(error: Exception) -> str:
    # torch wraps the unpickler's one-line reason in advice about
    # weights_only; keep the reason.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    boilerplate = ('Weights only load failed', 'Please file an issue',
                   'Check the documentation')
    reasons = [line for line in lines if not line.startswith(boilerplate)]
    return reasons[-1] if reasons else (lines[0] if lines else type(error).__name__)


def read_checkpoint(path: PathLike, map_location: Any = 'cpu') -> Dict[str, Any]:
    r"""Reads a checkpoint with ``torch.load(weights_only=True)`` and checks
    its layout.

    Args:
        path (str): The checkpoint file.
        map_location (optional): Where tensors go. (default: :obj:`'cpu'`)

    Returns:
        The checkpoint dictionary (see the module docstring).

    Raises:
        CheckpointError: If the file is missing, corrupt, holds pickled
            objects other than tensors and plain data, or is not a tcmp_pyg
            checkpoint.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise CheckpointError(f"Checkpoint '{path}' not found")
    try:
        checkpoint = torch.load(path, map_location=map_location,
                                weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(e)
        if 'GLOBAL' in reason:
            raise CheckpointError(
                f"Refusing to load '{path}': it holds a pickled object that "
                f"weights_only loading blocks ({reason}); unpickling it could "
                f"run arbitrary code. tcmp_pyg checkpoints hold only tensors "
                f"and plain data; was this file written by something else?"
            ) from e
        raise CheckpointError(f"Checkpoint '{path}' is corrupt or not a "
                              f"tcmp_pyg checkpoint (the weights_only "
                              f"unpickler refused it: {reason})") from e
    except Exception as e:  # truncated zip, random bytes, empty file, ...
        detail = f'{type(e).__name__}: {e}' if str(e) else type(e).__name__
        raise CheckpointError(f"Checkpoint '{path}' is corrupt or truncated "
                              f"({detail})") from e
    if not isinstance(checkpoint, dict) \
            or checkpoint.get('format') != CHECKPOINT_FORMAT:
        found = (f"format {checkpoint.get('format')!r}"
                 if isinstance(checkpoint, dict) else type(checkpoint).__name__)
        raise CheckpointError(f"Expected '{path}' to be a tcmp_pyg checkpoint "
                              f"(format '{CHECKPOINT_FORMAT}') (got {found})")
    version = checkpoint.get('version')
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"Checkpoint '{path}' has version {version!r}; "
                              f"this tcmp_pyg reads versions up to "
                              f"{CHECKPOINT_VERSION} (upgrade tcmp_pyg)")
    model = checkpoint.get('model')
    if not isinstance(model, dict) or not isinstance(model.get('class_name'), str) \
            or not isinstance(model.get('config'), dict) \
            or not isinstance(checkpoint.get('state_dict'), dict):
        raise CheckpointError(f"Checkpoint '{path}' lacks its model "
                              f"description ('model': class_name and config) "
                              f"or its 'state_dict'")
    return checkpoint


def read_resume_checkpoint(path: PathLike, map_location: Any = 'cpu'
                           ) -> Optional[Tuple[Dict[str, Any], str]]:
    r"""Reads the checkpoint a run resumes from: ``path``, or if ``path`` is
    corrupt, the previous checkpoint kept beside it
    (:func:`previous_checkpoint_path`). The corrupt file is then renamed to
    ``<path>.corrupt`` (so it is neither read nor kept again) and a
    :class:`UserWarning` says so.

    Args:
        path (str): The run's checkpoint (``model.pt``).
        map_location (optional): Where tensors go. (default: :obj:`'cpu'`)

    Returns:
        ``(checkpoint, the file read)``, or :obj:`None` if ``path`` does not
        exist (a new run).

    Raises:
        CheckpointError: If ``path`` is corrupt and there is no readable
            previous checkpoint.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        return None
    try:
        return read_checkpoint(path, map_location), path
    except CheckpointError as error:
        prev = previous_checkpoint_path(path)
        if not osp.exists(prev):
            raise CheckpointError(
                f"{error}. There is no previous checkpoint ('{prev}') to fall "
                f"back on: delete '{path}' to train the run from the start, "
                f"or use another out_dir") from error
        try:
            checkpoint = read_checkpoint(prev, map_location)
        except CheckpointError as prev_error:
            raise CheckpointError(
                f"{error}. The previous checkpoint is unusable too "
                f"({prev_error}): delete both to train the run from the "
                f"start, or use another out_dir") from error
        os.replace(path, path + '.corrupt')
        epoch = (checkpoint.get('training') or {}).get('epoch')
        warnings.warn(f"{error}. Moved it to '{path}.corrupt' and resuming "
                      f"from the previous checkpoint '{prev}' (epoch {epoch})",
                      stacklevel=2)
        return checkpoint, prev


def model_from_checkpoint(checkpoint: Dict[str, Any], path: str = '<checkpoint>'
                          ) -> nn.Module:
    """Rebuilds the model of a checkpoint read by :func:`read_checkpoint` and
    loads its state dict strictly (see :func:`load_model`)."""
    description = checkpoint['model']
    try:
        model = model_from_config(description['class_name'], description['config'])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"Checkpoint '{path}': cannot rebuild model "
                              f"{description['class_name']} from its config "
                              f"({type(e).__name__}: {e})") from e
    try:
        model.load_state_dict(checkpoint['state_dict'], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"Checkpoint '{path}': the state dict does not "
                              f"match {description['class_name']} built from "
                              f"its config:\n{e}") from e
    return model


def load_model(path: PathLike, map_location: Any = 'cpu') -> nn.Module:
    r"""Loads a model saved by :func:`save_checkpoint` (e.g. a run's
    ``model.pt``), masks and gates included, in eval mode.

    The architecture is rebuilt from the stored class name and ``config()``
    (no pickled classes) and the state dict is loaded with ``strict=True``.

    Args:
        path (str): The checkpoint file.
        map_location (optional): Where tensors go. (default: :obj:`'cpu'`)

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: If the file is missing, corrupt, unsafe, or its state
            dict does not match the architecture.

    Example::

        >>> model = tcmp_pyg.load_model('runs/sbu1/model.pt')
        >>> print(tcmp_pyg.pruning.connectivity(model))
    """
    path = os.fspath(path)
    model = model_from_checkpoint(read_checkpoint(path, map_location), path)
    return model.eval()


# Config entries that change how a model computes, not which weights it has.
_NOT_ARCHITECTURE = ('dropout', 'sparse')


def init_from_checkpoint(model: nn.Module, path: PathLike,
                         map_location: Any = 'cpu') -> None:
    r"""Initialises ``model`` with the weights and BatchNorm statistics of a
    checkpoint of the same architecture (e.g. a trained dense run's
    ``model.pt``), in place: the start of a fine-tuning run.

    The checkpoint's masks are folded into its weights (pruned entries become
    zeros) and reset to ones, and every channel gate is opened, so that
    ``model`` starts dense from the function the checkpoint computes (up to
    the constants of gated channels) and a pruning method selects its own
    masks from there.

    Args:
        model (nn.Module): The freshly built model (with ``config()``).
        path (str): The checkpoint file.
        map_location (optional): Where tensors are read to.
            (default: :obj:`'cpu'`)

    Raises:
        CheckpointError: If the file is missing, corrupt or unsafe, or holds
            another architecture (the message names the file and what
            differs: the class, config entries or state-dict entries).
    """
    path = os.fspath(path)
    checkpoint = read_checkpoint(path, map_location)
    want, got = model_description(model), checkpoint['model']
    if got['class_name'] != want['class_name']:
        raise CheckpointError(
            f"Cannot initialise from '{path}': it holds a "
            f"{got['class_name']}, this run builds a {want['class_name']} "
            f"(use a checkpoint of the same --model)")
    differ = [f'{key} (checkpoint {got["config"].get(key)!r}, this run '
              f'{want["config"].get(key)!r})'
              for key in sorted(set(got['config']) | set(want['config']))
              if key not in _NOT_ARCHITECTURE
              and _plain(got['config'].get(key)) != _plain(want['config'].get(key))]
    if differ:
        raise CheckpointError(
            f"Cannot initialise from '{path}': its {got['class_name']} has "
            f"another architecture than this run's: {'; '.join(differ)}. The "
            f"checkpoint must come from the same --model on the same dataset "
            f"and input streams")
    try:
        model.load_state_dict(checkpoint['state_dict'], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"Cannot initialise from '{path}': its state "
                              f"dict does not match this run's "
                              f"{want['class_name']}:\n{e}") from e
    for module in model.modules():
        if isinstance(module, PrunableModule):
            module.remove_mask()
        elif isinstance(module, ChannelGate):
            module.gate.fill_(1.0)


def _plain(value: Any) -> Any:
    # Tuples and lists compare alike (a config read back may hold either).
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
