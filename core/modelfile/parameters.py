"""Parameters, not only types: a model built only from allowed types can still open files,
run an arbitrary callable or hang on a regular expression. Every object reachable from the
loaded estimator is checked before anything calls it."""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from core.errors import UnsafeArtifact

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # noqa: S105 - scikit-learn's default
ANALYZERS = ("word", "char", "char_wb")
STRIP_ACCENTS = (None, "ascii", "unicode")
MAX_OBJECTS = 200_000
_CALLABLE_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    np.ufunc,
    functools.partial,
)
_SCALAR_TYPES = (float, int, bool, str, complex, object)

# functions a saved model may hold: element-wise numpy maths (FunctionTransformer,
# TransformedTargetRegressor) and scikit-learn's feature-selection scores
ALLOWED_CALLABLES = frozenset(
    {
        *(
            f"numpy.{name}"
            for name in (
                "log",
                "log1p",
                "log2",
                "log10",
                "exp",
                "expm1",
                "exp2",
                "sqrt",
                "cbrt",
                "square",
                "absolute",
                "abs",
                "sign",
                "reciprocal",
                "negative",
                "tanh",
                "arctanh",
                "arcsinh",
                "sinh",
                "cosh",
                "floor",
                "ceil",
                "rint",
                "clip",
            )
        ),
        *(
            f"sklearn.feature_selection._univariate_selection.{name}"
            for name in ("chi2", "f_classif", "f_oneway", "f_regression", "r_regression")
        ),
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
    }
)


def _refused(where: str, problem: str, fix: str) -> UnsafeArtifact:
    return UnsafeArtifact(
        f"The model file was refused and not stored: {where} {problem}. {fix}",
        details=[f"parameter: {where}"],
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _callable_name(value: Any) -> str:
    if isinstance(value, np.ufunc):
        return f"numpy.{value.__name__}"
    if isinstance(value, functools.partial):
        return _callable_name(value.func)
    module = getattr(value, "__module__", None) or ""
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
    return f"{module}.{name}"


def _is_scalar_type(value: Any) -> bool:
    return isinstance(value, type) and (
        value in _SCALAR_TYPES or (issubclass(value, np.generic) and value is not np.generic)
    )


def _walk(root: Any) -> Iterator[tuple[str, Any, Any]]:
    """(attribute, value, owner) for every attribute and item reachable from `root`;
    types, functions and modules are leaves, never entered."""
    seen: set[int] = set()
    pending: list[tuple[str, Any, Any]] = [(type(root).__name__, root, None)]
    while pending and len(seen) < MAX_OBJECTS:
        where, obj, owner = pending.pop()
        yield where, obj, owner
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        if isinstance(obj, (type, types.ModuleType, *_CALLABLE_TYPES)):
            continue
        seen.add(id(obj))
        pending.extend(_children(where, obj))


def _children(where: str, obj: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(obj, dict):
        return [(f"{where}[{_short(k)}]", v, obj) for k, v in obj.items()]
    if isinstance(obj, list | tuple | set | frozenset):
        return [(f"{where}[{i}]", v, obj) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return [(f"{where}[{i}]", v, obj) for i, v in enumerate(obj.ravel().tolist())]
        return []
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict):
        return []
    name = type(obj).__name__
    return [(f"{name}.{k}", v, obj) for k, v in attrs.items()]


def _check_callable(where: str, value: Any) -> None:
    attribute = where.rsplit(".", 1)[-1]
    if _is_scalar_type(value) and (attribute == "dtype" or attribute.endswith("_dtype")):
        return
    if isinstance(value, type):
        if _is_scalar_type(value):
            raise _refused(
                where,
                f"is the type {_callable_name(value)}, which a model calls like a function",
                "Leave the parameter at its default and save the model again.",
            )
        return  # a class kept as a value (not called): loading already checked it
    name = _callable_name(value)
    if isinstance(value, _CALLABLE_TYPES) and name not in ALLOWED_CALLABLES:
        raise _refused(
            where,
            f"is the function {name[:80]}, which is not on this server's list of functions "
            "a model may call",
            "Use the built-in option instead of a function, or ask an administrator.",
        )


def _check_vectorizer(name: str, obj: Any, allowed_patterns: frozenset[str]) -> None:
    value = getattr(obj, "input", "content")
    if value != "content":
        raise _refused(
            f"{name}.input",
            f"is {_short(value)}, which makes the model open files or streams named in the data",
            "Only input='content' is accepted: fit the vectorizer on the text itself.",
        )
    analyzer = getattr(obj, "analyzer", "word")
    if not isinstance(analyzer, str) or analyzer not in ANALYZERS:
        raise _refused(
            f"{name}.analyzer",
            "is not one of 'word', 'char' or 'char_wb'",
            "Use a built-in analyzer and save the model again.",
        )
    for attr in ("preprocessor", "tokenizer"):
        if getattr(obj, attr, None) is not None:
            raise _refused(
                f"{name}.{attr}",
                "is set; a custom function is not accepted",
                f"Leave {attr} at None and save the model again.",
            )
    if getattr(obj, "strip_accents", None) not in STRIP_ACCENTS:
        raise _refused(
            f"{name}.strip_accents",
            "is not None, 'ascii' or 'unicode'",
            "Use a built-in option and save the model again.",
        )
    _check_pattern(f"{name}.token_pattern", getattr(obj, "token_pattern", None), allowed_patterns)


def _check_pattern(where: str, pattern: Any, allowed_patterns: frozenset[str]) -> None:
    if pattern is None or pattern == DEFAULT_TOKEN_PATTERN or pattern in allowed_patterns:
        return
    raise _refused(
        where,
        f"is the regular expression {_short(pattern)}, which an administrator has not allowed "
        "(a crafted expression can take minutes of CPU on a short text)",
        "Use the default token_pattern, or ask an administrator to allow this exact pattern.",
    )


def require_safe_parameters(estimator: Any, allowed_patterns: frozenset[str] = frozenset()) -> None:
    """Refuse (UnsafeArtifact, naming the parameter) what a model may not do when it runs."""
    from sklearn.feature_extraction.text import _VectorizerMixin

    for where, value, owner in _walk(estimator):
        attribute = where.rsplit(".", 1)[-1]
        if isinstance(value, _VectorizerMixin):
            _check_vectorizer(type(value).__name__, value, allowed_patterns)
        elif isinstance(value, (type, *_CALLABLE_TYPES)):
            _check_callable(where, value)
        elif attribute == "memory" and value is not None and owner is not None:
            raise _refused(
                where,
                "is set, which makes the pipeline read and write a cache directory",
                "Save the model with memory=None.",
            )
        elif attribute.endswith("pattern") and isinstance(value, str) and owner is not None:
            _check_pattern(where, value, allowed_patterns)
