"""The allow-list of types a model file may name, and the refusal messages every layer uses."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import InvalidInput, UnsafeArtifact

FORMATS = ("skops", "joblib", "pickle")
MAX_PARAM_TEXT = 300
MAX_MODEL_BYTES = 200 * 1024 * 1024
MAX_UNPACKED_FACTOR = 5
MAX_PACK_RATIO = 200
RATIO_CHECK_FLOOR = 64 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 100_000
_CHUNK = 1024 * 1024

ALLOWED_TYPES: frozenset[str]  # computed on first use, see _allowed_types()

_ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_HOSTILE_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "builtins",
        "__builtin__",
        "importlib",
        "runpy",
        "socket",
        "shutil",
        "pty",
        "code",
        "ctypes",
        "pickle",
        "_pickle",
        "marshal",
        "types",
        "operator",
        "webbrowser",
        "commands",
        "platform",
        "pathlib",
        "io",
        "tempfile",
        "multiprocessing",
    }
)

_EXTRA_NAMES = (
    "builtins.slice",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.complex",
    "_codecs.encode",
    "collections.OrderedDict",
    "functools.partial",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy._core.numeric._frombuffer",
    "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy.ma.core._mareconstruct",
    "numpy.ma.core.MaskedArray",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._kd_tree.KDTree64",
    "sklearn.neighbors._kd_tree.KDTree32",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._ball_tree.BallTree64",
    "sklearn.neighbors._ball_tree.BallTree32",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.metrics._dist_metrics.newObj",
    "sklearn.metrics._dist_metrics.__pyx_unpickle_DistanceMetric",
    "sklearn.utils._bunch.Bunch",
    "sklearn.utils.validation.check_array",
)


def skops_conversion_hint() -> str:
    """The one-line conversion advice shown in refusal messages."""
    return "Save the model with skops.io.dump(model, 'model.skops') and upload that."


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _module_names(module: str, keep: Callable[[str, Any], bool]) -> set[str]:
    mod = importlib.import_module(module)
    return {f"{module}.{n}" for n, v in vars(mod).items() if keep(n, v)}


@functools.cache
def _allowed_types() -> frozenset[str]:
    import scipy.sparse as sp
    from sklearn.utils import all_estimators

    names = set(_EXTRA_NAMES)
    names |= {_class_name(cls) for _, cls in all_estimators()}
    names |= {_class_name(t) for t in set(np.sctypeDict.values())}
    sparse = ("csr", "csc", "coo", "bsr", "dia", "lil", "dok")
    names |= {_class_name(getattr(sp, f"{k}_{s}")) for k in sparse for s in ("matrix", "array")}
    names |= _module_names(
        "sklearn._loss._loss", lambda n, v: n.startswith(("Cy", "__pyx_unpickle_Cy"))
    )
    names |= _module_names(
        "sklearn._loss.loss", lambda n, v: isinstance(v, type) and n.endswith(("Loss", "Error"))
    )
    names |= _module_names(
        "sklearn._loss.link", lambda n, v: isinstance(v, type) and n.endswith(("Link", "Logit"))
    )
    names.add("sklearn._loss.link.Interval")
    names |= _module_names(
        "sklearn.metrics._dist_metrics",
        lambda n, v: isinstance(v, type) and "Distance" in n and not n.startswith("PyFunc"),
    )
    return frozenset(names)


# ---------------------------------------------------------------------------
# Messages


def _refused(problem: str, *, details: list[str] | None = None) -> UnsafeArtifact:
    return UnsafeArtifact(
        f"{problem}; it was refused and not stored. {skops_conversion_hint()}", details=details
    )


def _unreadable(problem: str) -> InvalidInput:
    return InvalidInput(f"{problem} {skops_conversion_hint()}")


def _forbidden_names_error(names: list[str]) -> UnsafeArtifact:
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    hostile = any(n.split(".", 1)[0] in _HOSTILE_MODULES for n in names)
    why = (
        "which a model file never needs"
        if hostile
        else "which is not on this server's list of allowed scikit-learn, numpy and scipy types"
    )
    return _refused(f"The file asks to import {listed}, {why}", details=sorted(names))


def _canonical(module: str, name: str) -> str:
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _restricted_find_class(module: str, name: str, allowed: frozenset[str]) -> Any:
    full = _canonical(module, name)
    if full not in allowed:
        raise _forbidden_names_error([full])
    mod_name, _, attr = full.rpartition(".")
    return getattr(importlib.import_module(mod_name), attr)
