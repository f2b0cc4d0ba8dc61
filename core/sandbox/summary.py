"""What the server accepts back about a loaded model: a fixed schema, checked field by field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.sandbox.protocol import ProtocolError

FORMATS = ("skops", "joblib", "pickle")
TASKS = ("binary_classification", "multiclass_classification", "regression")
MAX_TEXT = 300
MAX_ITEMS = 10_000


@dataclass(frozen=True)
class ModelSummary:
    """A loaded model as the server knows it; the SHA-256 and size are the server's own."""

    format: str
    sha256: str
    size_bytes: int
    estimator_class: str
    library_versions: dict[str, str]
    params: dict[str, Any]
    feature_names: list[str] | None
    n_features: int | None
    task: str | None
    classes: list[Any] | None


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"{what} is not a short text")
    return value


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    raise ProtocolError("a value is not a plain number, text or boolean")


def _param(value: Any, depth: int = 0) -> Any:
    if isinstance(value, list) and depth < 3:
        return [_param(v, depth + 1) for v in value[:100]]
    return _scalar(value)


def _optional_list(value: Any, what: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise ProtocolError(f"{what} is not a list")
    return value


def summary_from_json(value: Any, *, sha256: str, size_bytes: int) -> ModelSummary:
    if not isinstance(value, dict):
        raise ProtocolError("the model summary is not an object")
    fmt = value.get("format")
    task = value.get("task")
    n_features = value.get("n_features")
    versions = value.get("library_versions")
    params = value.get("params")
    if fmt not in FORMATS or (task is not None and task not in TASKS):
        raise ProtocolError("the model summary names an unknown format or task")
    if n_features is not None and (type(n_features) is not int or n_features < 0):
        raise ProtocolError("the model summary has an invalid feature count")
    if not isinstance(versions, dict) or not isinstance(params, dict) or len(params) > 500:
        raise ProtocolError("the model summary has invalid versions or parameters")
    names = _optional_list(value.get("feature_names"), "the feature names")
    classes = _optional_list(value.get("classes"), "the classes")
    return ModelSummary(
        format=fmt,
        sha256=sha256,
        size_bytes=size_bytes,
        estimator_class=_text(value.get("estimator_class"), "the estimator class"),
        library_versions={
            _text(k, "a library"): _text(v, "a version") for k, v in versions.items()
        },
        params={_text(k, "a parameter name"): _param(v) for k, v in params.items()},
        feature_names=None if names is None else [_text(n, "a feature name") for n in names],
        n_features=n_features,
        task=task,
        classes=None if classes is None else [_scalar(c) for c in classes],
    )
