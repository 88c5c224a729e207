"""Read a pickle that should hold only data (numpy arrays, lists, dicts, strings, numbers), such
as the CIFAR-10 python batches, without running any code it names.

``pickle.loads`` calls whatever global a file names (``os.system``, ``builtins.eval``): a data file
must never be able to do that. `load_data_pickle` admits only the few globals numpy arrays and
Python-3 pickles of bytes need, and refuses anything else before it is called.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

from committee_tasks.core.errors import CommitteeError


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:  # numpy 2 moved the array internals to numpy._core; numpy 1 pickles name numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric
    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        found[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # protocol 5 pickles of contiguous arrays: an array from a buffer, no code
        found[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles of bytes use it (protocol 2: ``encode(str, 'latin1')``),
    and nothing else: no other codec is looked up."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin1 holds bytes)")
    return codecs.encode(text, "latin1", errors)


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed: dict[tuple[str, str], Any] = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


class _Refused(pickle.UnpicklingError):
    """A global the file names that data does not need."""


def load_data_pickle(path: str | Path, raw: bytes | None = None, convert: str = "",
                     encoding: str = "latin1") -> Any:
    """The data pickled in ``path`` (``raw``: its bytes, if already read). A file naming any other
    global than numpy's array constructors is refused (nothing it names is called), as is a file
    that is no pickle; ``convert`` says how to turn the data into a safe format (the error's fix)."""
    raw = Path(path).read_bytes() if raw is None else raw
    fix = f" {convert}" if convert else ""
    try:
        return _DataUnpickler(io.BytesIO(raw), encoding=encoding).load()
    except _Refused as err:
        raise CommitteeError(f"{path}: refused to unpickle it: it loads the Python global {err}, which no data "
                             f"file needs, so it could run code (nothing was run).{fix}") from None
    except Exception as err:  # truncated, not a pickle, or an admitted global fed bad arguments
        raise CommitteeError(f"{path}: not a readable data pickle ({type(err).__name__}: {err}).{fix}") from None

