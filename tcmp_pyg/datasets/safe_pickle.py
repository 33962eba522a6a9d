r"""Loading the plain pickles of other toolkits without running their code.

``pickle.load`` calls whatever function a file names, so a pickle from the
internet can run ``os.system`` on load. The files read here (ST-GCN's
``(sample_names, labels)`` label files, pyskl / mmaction2 pose annotations)
only hold lists, dicts, tuples, strings, numbers and numpy arrays, so
:class:`RestrictedUnpickler` resolves only the globals those need and refuses
every other one with :class:`UnsafePickleError` before anything is called:

- ``builtins.set``, ``frozenset``, ``complex``, ``slice``, ``range``:
  containers without an opcode of their own in protocols 0-3;
- ``_codecs.encode``, Latin-1 only, and ``bytes()`` without a size:
  ``bytes`` in protocol 2 pickles (mmcv, hence pyskl, writes protocol 2;
  empty numpy arrays hold an empty ``bytes``);
- ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray._reconstruct``
  (arrays, protocols 0-4), ``numpy.core.multiarray.scalar`` (numpy scalars,
  e.g. ``np.int64`` labels), ``numpy.core.numeric._frombuffer`` (arrays,
  protocol 5), each also under numpy 2's ``numpy._core`` name.

``__builtin__`` (Python 2 pickles) is read as ``builtins``; text in Python 2
pickles is decoded as Latin-1, which is what numpy needs for their arrays.
Object arrays are fine: their items go through the same check.
"""
from __future__ import annotations

import codecs
import os
import pickle
from typing import Any, BinaryIO, Dict, Tuple, Union

import numpy as np

try:  # numpy >= 2 (and 1.26, which ships the new name for pickles)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core import multiarray as _multiarray  # type: ignore
    from numpy.core import numeric as _numeric  # type: ignore


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global (function or class) outside the allow-list of
    :mod:`tcmp_pyg.datasets.safe_pickle`; nothing it names was called."""


def _latin1_encode(text: str, encoding: str = 'latin1',
                   errors: str = 'strict') -> bytes:
    # Protocol 2 stores bytes as _codecs.encode(text, 'latin1'); refuse the
    # other codecs (zlib, ...) that an attacker could use as a decoder bomb.
    # Compared as text: looking the codec up could import modules.
    if not isinstance(encoding, str) or errors != 'strict' or \
            encoding.lower().replace('-', '').replace('_', '') \
            not in ('latin1', 'iso88591', 'l1'):
        raise UnsafePickleError(f"Refused _codecs.encode(..., {encoding!r}, "
                                f"{errors!r}): only Latin-1 occurs in plain "
                                f"protocol 2 pickles")
    return codecs.encode(text, 'latin1')


def _bytes(*args: Any) -> bytes:
    # Protocol 2 stores b'' as bytes(); refuse bytes(n), a memory bomb.
    if args == () or (len(args) == 1 and isinstance(args[0], bytes)):
        return bytes(*args)
    raise UnsafePickleError("Refused a bytes(...) call other than bytes() or "
                            "bytes(b'...'): plain pickles make no other")


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    allowed: Dict[Tuple[str, str], Any] = {
        ('builtins', name): obj for name, obj in (
            ('set', set), ('frozenset', frozenset), ('complex', complex),
            ('slice', slice), ('range', range))}
    allowed[('builtins', 'bytes')] = _bytes
    allowed[('_codecs', 'encode')] = _latin1_encode
    allowed[('numpy', 'ndarray')] = np.ndarray
    allowed[('numpy', 'dtype')] = np.dtype
    # numpy 2 writes numpy._core.*, numpy 1 numpy.core.*: accept both names
    # without importing the deprecated numpy.core shim.
    for core in ('numpy.core', 'numpy._core'):
        allowed[(f'{core}.multiarray', '_reconstruct')] = _multiarray._reconstruct
        allowed[(f'{core}.multiarray', 'scalar')] = _multiarray.scalar
        allowed[(f'{core}.numeric', '_frombuffer')] = _numeric._frombuffer
    return allowed


SAFE_GLOBALS: Dict[Tuple[str, str], Any] = _allowed_globals()
"""``(module, name) -> object``: every global :class:`RestrictedUnpickler`
resolves."""


class RestrictedUnpickler(pickle.Unpickler):
    r"""A :class:`pickle.Unpickler` that resolves only :obj:`SAFE_GLOBALS`
    (plain containers and numpy arrays) and refuses any other global, such as
    ``os.system`` or ``builtins.eval``, with :class:`UnsafePickleError`.

    Args:
        file (BinaryIO): The open pickle file.
        source (str, optional): How errors name the file.
            (default: :obj:`'pickle'`)
    """

    def __init__(self, file: BinaryIO, source: str = 'pickle') -> None:
        # Latin-1 decodes Python 2 str objects losslessly (numpy's advice).
        super().__init__(file, encoding='latin1')
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        key = ('builtins' if module == '__builtin__' else module, name)
        if key in SAFE_GLOBALS:
            return SAFE_GLOBALS[key]
        raise UnsafePickleError(
            f"{self.source}: refused to load the global '{module}.{name}'. "
            f"Only plain data (lists, dicts, tuples, strings, numbers) and "
            f"numpy arrays are read from pickles, because a pickle can run "
            f"any function it names while it loads. If you trust this file, "
            f"load it with pickle yourself and pass the plain data on.")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused a persistent id "
                                f"({pid!r}); plain pickles have none")


def safe_load_pickle(path: Union[str, 'os.PathLike[str]']) -> Any:
    r"""Loads a pickle file that holds only plain data and numpy arrays.

    Args:
        path (str): The pickle file.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: If the file names any global outside
            :obj:`SAFE_GLOBALS` (nothing it names is called).
        ValueError: If the file is not a readable pickle.
    """
    path = os.fspath(path)
    with open(path, 'rb') as f:
        try:
            return RestrictedUnpickler(f, source=path).load()
        except UnsafePickleError as e:
            if str(e).startswith(path):
                raise
            raise UnsafePickleError(f'{path}: {e}') from None
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError,
                ValueError, TypeError, AttributeError, IndexError,
                KeyError) as e:
            raise ValueError(f"{path}: not a readable pickle "
                             f"({type(e).__name__}: {e})") from e


__all__ = ['SAFE_GLOBALS', 'RestrictedUnpickler', 'UnsafePickleError',
           'safe_load_pickle']
