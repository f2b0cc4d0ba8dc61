"""What a loaded model is (class, task, classes, parameters), and the checks on its saved
state (a real estimator, decision trees whose links stay inside the tree)."""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.modelfile.allowlist import MAX_PARAM_TEXT, _class_name, _refused, skops_conversion_hint


@dataclass(frozen=True)
class InspectedModel:
    estimator: Any
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


# ---------------------------------------------------------------------------
# Description of the loaded estimator


def _public_class_name(cls: type) -> str:
    parts = cls.__module__.split(".")
    for depth in range(1, len(parts)):
        public = ".".join(parts[:depth])
        try:
            if getattr(importlib.import_module(public), cls.__qualname__, None) is cls:
                return f"{public}.{cls.__qualname__}"
        except ImportError:
            continue
    return _class_name(cls)


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value[:MAX_PARAM_TEXT]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple) and depth < 3:
        return [_json_safe(v, depth + 1) for v in value[:100]]
    return repr(value)[:MAX_PARAM_TEXT]


def _optional(obj: Any, attr: str) -> Any:
    try:
        return getattr(obj, attr)
    except Exception:  # noqa: BLE001 - fitted-attribute properties raise many kinds
        return None


def _feature_names(estimator: Any) -> list[str] | None:
    names = _optional(estimator, "feature_names_in_")
    if names is None and hasattr(estimator, "steps") and estimator.steps:
        names = _optional(estimator.steps[0][1], "feature_names_in_")
    return [str(n) for n in names] if names is not None else None


def _task(estimator: Any, classes: list[Any] | None) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        if classes is None:
            return None
        return "binary_classification" if len(classes) == 2 else "multiclass_classification"
    return "regression" if is_regressor(estimator) else None


def _describe(estimator: Any, data: bytes, fmt: str, file_version: str | None) -> InspectedModel:
    import scipy
    import sklearn

    versions = {"sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__}
    if file_version:
        versions["sklearn_file"] = file_version
    raw_classes = _optional(estimator, "classes_")
    classes = None
    if raw_classes is not None:
        try:
            classes = [_json_safe(c) for c in np.asarray(raw_classes).tolist()]
        except (TypeError, ValueError):
            classes = None
    n_features = _optional(estimator, "n_features_in_")
    try:
        raw_params = estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - a broken estimator state
        raw_params = {}
    return InspectedModel(
        estimator=estimator,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        estimator_class=_public_class_name(type(estimator)),
        library_versions=versions,
        params={str(k): _json_safe(v) for k, v in raw_params.items()},
        feature_names=_feature_names(estimator),
        n_features=int(n_features) if isinstance(n_features, int | np.integer) else None,
        task=_task(estimator, classes),
        classes=classes,
    )


def _nested_objects(root: Any, limit: int = 100_000) -> Iterator[Any]:
    """Every object reachable from `root` through attributes, containers and object arrays."""
    seen: set[int] = set()
    pending = [root]
    while pending and len(seen) < limit:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            pending.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                pending.extend(obj.ravel().tolist())
        elif hasattr(obj, "__dict__"):
            pending.extend(vars(obj).values())


def _links_are_sound(left: Any, right: Any, is_leaf: Any, size: int) -> bool:
    index = np.arange(size)
    inner = ~np.asarray(is_leaf, dtype=bool)
    left, right = np.asarray(left)[inner], np.asarray(right)[inner]
    parents = index[inner]
    return bool(((left > parents) & (left < size) & (right > parents) & (right < size)).all())


def _tree_is_sound(tree: Any) -> bool:
    size = int(tree.node_count)
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    leaf = left == -1
    if len(left) != size or tree.value.shape[0] != size or not (leaf == (right == -1)).all():
        return False
    inner_features = feature[~leaf]
    in_range = (inner_features >= 0) & (inner_features < int(tree.n_features))
    return _links_are_sound(left, right, leaf, size) and bool(in_range.all())


def _predictor_is_sound(predictor: Any, n_features: int | None) -> bool:
    nodes = predictor.nodes
    size = len(nodes)
    inner = ~nodes["is_leaf"].astype(bool)
    if not _links_are_sound(nodes["left"], nodes["right"], nodes["is_leaf"], size):
        return False
    features = nodes["feature_idx"][inner]
    if n_features is not None and not ((features >= 0) & (features < n_features)).all():
        return False
    categorical = inner & nodes["is_categorical"].astype(bool)
    bitsets = nodes["bitset_idx"][categorical]
    return bool((bitsets < len(predictor.raw_left_cat_bitsets)).all()) and bool(
        (bitsets < len(predictor.binned_left_cat_bitsets)).all()
    )


def _require_sound_trees(estimator: Any) -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    n_features: int | None = None
    for obj in _nested_objects(estimator):
        if hasattr(obj, "_predictors") and isinstance(getattr(obj, "n_features_in_", None), int):
            n_features = obj.n_features_in_
        try:
            sound = True
            if isinstance(obj, Tree):
                sound = _tree_is_sound(obj)
            elif isinstance(obj, TreePredictor):
                sound = _predictor_is_sound(obj, n_features)
        except Exception:  # noqa: BLE001 - a tree whose arrays cannot be read is not sound
            sound = False
        if not sound:
            raise _refused(
                "The file holds a decision tree whose nodes point outside the tree or back up "
                "it, which a saved model never does"
            )


def _require_estimator(obj: Any) -> None:
    from sklearn.base import BaseEstimator

    if isinstance(obj, BaseEstimator) and callable(getattr(obj, "fit", None)):
        try:
            obj.get_params(deep=True)
        except Exception as exc:  # noqa: BLE001 - a damaged saved state fails in many ways
            raise InvalidInput(
                f"The file holds a {type(obj).__name__} whose saved state is incomplete or "
                f"damaged ({type(exc).__name__}). Save the fitted model again and "
                "upload the new file."
            ) from exc
        return
    raise InvalidInput(
        f"The file holds a {type(obj).__name__}, not a scikit-learn estimator; upload a fitted "
        f"model (for example a Pipeline or a classifier). {skops_conversion_hint()}"
    )


def summary_json(inspected: InspectedModel) -> dict[str, Any]:
    """The description the sandbox worker sends back: plain JSON, no objects."""
    return {
        "format": inspected.format,
        "estimator_class": inspected.estimator_class,
        "library_versions": inspected.library_versions,
        "params": inspected.params,
        "feature_names": inspected.feature_names,
        "n_features": inspected.n_features,
        "task": inspected.task,
        "classes": inspected.classes,
    }
