from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
import pickletools
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core import modelfile
from core.errors import InvalidInput, QuorumError, UnsafeArtifact
from core.modelfile import (
    MAX_MODEL_BYTES,
    InspectedModel,
    inspect_model_bytes,
    load_model_bytes,
    skops_conversion_hint,
    sniff_format,
)

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.hostile import EXPECTED_REASONS, build_hostile_corpus  # noqa: E402

# ---------------------------------------------------------------------------
# Real models

NUMERIC = [f"num_{i}" for i in range(5)]


def _frame(n: int = 240) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(n, 5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=NUMERIC)
    frame["region"] = np.array(["north", "south", "east"])[np.arange(n) % 3]
    return frame, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, Any]]:
    X, y = make_classification(240, 6, n_informative=4, n_classes=3, random_state=0)
    Xb, yb = make_classification(240, 6, random_state=1)
    Xr, yr = make_regression(240, 6, random_state=0)
    frame, yf = _frame()
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), NUMERIC),
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    return {
        "logistic": (LogisticRegression(max_iter=500).fit(X, y), X),
        "forest": (RandomForestClassifier(12, random_state=0).fit(Xb, yb), Xb),
        "gboost": (GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y), X),
        "hgb_clf": (HistGradientBoostingClassifier(max_iter=10).fit(Xb, yb), Xb),
        "hgb_reg": (HistGradientBoostingRegressor(max_iter=10).fit(Xr, yr), Xr),
        "ridge": (Ridge().fit(Xr, yr), Xr),
        "pipeline": (pipeline.fit(frame, yf), frame),
    }


def _joblib_bytes(obj: Any, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, **kwargs)
    return buffer.getvalue()


SAVERS = {
    "skops": (lambda m: sio.dumps(m), "skops"),
    "joblib": (lambda m: _joblib_bytes(m), "joblib"),
    "joblib_z3": (lambda m: _joblib_bytes(m, compress=3), "joblib"),
    "pickle_p2": (lambda m: pickle.dumps(m, protocol=2), "pickle"),
    "pickle_p3": (lambda m: pickle.dumps(m, protocol=3), "pickle"),
    "pickle_p4": (lambda m: pickle.dumps(m, protocol=4), "pickle"),
    "pickle_p5": (lambda m: pickle.dumps(m, protocol=5), "pickle"),
}
MODEL_NAMES = ["logistic", "forest", "gboost", "hgb_clf", "hgb_reg", "ridge", "pipeline"]


@pytest.mark.parametrize("saver", list(SAVERS))
@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_ordinary_models_round_trip_and_predict_identically(
    fitted: dict[str, tuple[Any, Any]], model_name: str, saver: str
) -> None:
    model, X = fitted[model_name]
    save, expected_format = SAVERS[saver]
    data = save(model)

    inspected = inspect_model_bytes(data, filename=f"model.{saver}")

    assert inspected.format == expected_format
    assert sniff_format(data) in {expected_format, "joblib"}
    assert inspected.sha256 == hashlib.sha256(data).hexdigest()
    assert inspected.size_bytes == len(data)
    assert type(inspected.estimator) is type(model)
    np.testing.assert_array_equal(inspected.estimator.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(inspected.estimator.predict_proba(X), model.predict_proba(X))
    json.dumps(inspected.params)
    json.dumps(inspected.classes)
    assert type(load_model_bytes(data)) is type(model)


def test_joblib_other_compressors_and_protocols_load(
    fitted: dict[str, tuple[Any, Any]],
) -> None:
    model, X = fitted["forest"]
    variants = [
        _joblib_bytes(model, compress=("gzip", 3)),
        _joblib_bytes(model, compress=("bz2", 3)),
        _joblib_bytes(model, compress=("xz", 3)),
        _joblib_bytes(model, compress=("lzma", 3)),
        _joblib_bytes(model, protocol=2),
        _joblib_bytes(model, protocol=5),
    ]
    for data in variants:
        loaded = load_model_bytes(data)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_description_of_a_pipeline(fitted: dict[str, tuple[Any, Any]]) -> None:
    model, _ = fitted["pipeline"]
    inspected = inspect_model_bytes(sio.dumps(model))

    assert inspected.estimator_class == "sklearn.pipeline.Pipeline"
    assert inspected.feature_names == [*NUMERIC, "region"]
    assert inspected.n_features == 6
    assert inspected.task == "binary_classification"
    assert inspected.classes == [0, 1]
    assert set(inspected.library_versions) >= {"sklearn", "numpy", "scipy"}
    assert inspected.library_versions["sklearn_file"] == inspected.library_versions["sklearn"]
    assert inspected.params["steps"][1] == ["clf", "LogisticRegression(max_iter=500)"]
    assert inspected.params["steps"][0][1].startswith("ColumnTransformer(")


def test_description_of_tasks_and_string_classes(fitted: dict[str, tuple[Any, Any]]) -> None:
    logistic = inspect_model_bytes(pickle.dumps(fitted["logistic"][0]))
    ridge = inspect_model_bytes(_joblib_bytes(fitted["ridge"][0]))
    X, y = make_classification(100, 5, random_state=0)
    labelled = LogisticRegression().fit(X, np.where(y == 1, "fraud", "ok"))
    strings = inspect_model_bytes(_joblib_bytes(labelled))

    assert logistic.task == "multiclass_classification"
    assert logistic.classes == [0, 1, 2]
    assert logistic.estimator_class == "sklearn.linear_model.LogisticRegression"
    assert logistic.params["max_iter"] == 500
    assert logistic.feature_names is None
    assert ridge.task == "regression" and ridge.classes is None
    assert ridge.library_versions["sklearn_file"] == ridge.library_versions["sklearn"]
    assert strings.classes == ["fraud", "ok"]
    assert strings.task == "binary_classification"
    json.dumps(strings.classes)


def test_file_sklearn_version_is_reported_from_the_file() -> None:
    X, y = make_classification(60, 5, random_state=0)
    model = LogisticRegression().fit(X, y)
    runtime = model.__getstate__()["_sklearn_version"]
    assert len(runtime) == 5
    data = pickle.dumps(model, protocol=5)
    recorded = b"\x8c\x05" + runtime.encode()
    assert data.count(recorded) == 1
    inspected = inspect_model_bytes(data.replace(recorded, b"\x8c\x051.4.2"))
    assert inspected.library_versions["sklearn_file"] == "1.4.2"
    assert inspected.library_versions["sklearn"] == runtime


# ---------------------------------------------------------------------------
# Content sniffing


def test_sniff_format_by_content_not_name(fitted: dict[str, tuple[Any, Any]]) -> None:
    model, X = fitted["logistic"]
    assert sniff_format(sio.dumps(model)) == "skops"
    assert sniff_format(_joblib_bytes(model)) == "joblib"
    assert sniff_format(_joblib_bytes(model, compress=3)) == "joblib"
    assert sniff_format(_joblib_bytes(model, compress=("bz2", 3))) == "joblib"
    assert sniff_format(pickle.dumps(model, protocol=4)) == "pickle"

    renamed = inspect_model_bytes(pickle.dumps(model, protocol=5), filename="model.skops")
    assert renamed.format == "pickle"
    np.testing.assert_array_equal(renamed.estimator.predict(X), model.predict(X))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x80\x01]q\x00.", "protocol 1"),
        (b"(lp0\n.", "not a model file"),
        (b"\x04\x22\x4d\x18rest", "LZ4"),
        (b"ZF0x0000", "before joblib 0.10"),
        (b"\x93NUMPY\x01\x00", "not a model file"),
    ],
)
def test_sniff_format_refuses_unknown_content(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        sniff_format(data)
    assert reason in caught.value.user_message
    assert skops_conversion_hint() in caught.value.user_message


def test_size_cap_is_enforced_before_reading(fitted: dict[str, tuple[Any, Any]]) -> None:
    data = _joblib_bytes(fitted["forest"][0])
    with pytest.raises(InvalidInput) as caught:
        load_model_bytes(data, max_bytes=1000)
    assert "limit" in caught.value.user_message
    assert MAX_MODEL_BYTES == 200 * 1024 * 1024


def test_decompressed_size_is_capped_relative_to_the_limit() -> None:
    X = np.zeros((4000, 50))
    model = Ridge().fit(X, np.zeros(4000))
    model.kept_training_data_ = X  # a real habit: training data left on the model
    data = _joblib_bytes(model, compress=3)
    with pytest.raises(UnsafeArtifact) as caught:
        load_model_bytes(data, max_bytes=len(data) * 2)
    assert "decompression bomb" in caught.value.user_message
    assert load_model_bytes(data).kept_training_data_.shape == (4000, 50)


def test_objects_that_are_not_estimators_are_refused() -> None:
    for payload in ({"weights": [1, 2, 3]}, np.arange(5)):
        for data in (pickle.dumps(payload, protocol=5), _joblib_bytes(payload)):
            with pytest.raises(InvalidInput) as caught:
                load_model_bytes(data)
            assert "not a scikit-learn estimator" in caught.value.user_message


# ---------------------------------------------------------------------------
# Allow-list


def test_allow_list_names_model_types_and_nothing_dangerous() -> None:
    allowed = modelfile.ALLOWED_TYPES
    assert "sklearn.pipeline.Pipeline" in allowed
    assert "sklearn.linear_model._logistic.LogisticRegression" in allowed
    assert "sklearn.tree._tree.Tree" in allowed
    assert "numpy.dtype" in allowed
    for name in (
        "posix.system",
        "os.system",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "importlib.import_module",
        "subprocess.Popen",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "sklearn.metrics._dist_metrics.PyFuncDistance64",
    ):
        assert name not in allowed
    assert all(
        name.split(".")[0]
        in {"sklearn", "numpy", "scipy", "builtins", "_codecs", "collections", "functools"}
        for name in allowed
    )


# ---------------------------------------------------------------------------
# Hostile corpus (R2)

MUST_BE_UNSAFE = {
    name for name in EXPECTED_REASONS if not name.startswith(("truncated", "empty", "random"))
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    directory = tmp_path_factory.mktemp("hostile")
    canary = directory / "canary"
    return build_hostile_corpus(directory / "files", canary), canary


def test_corpus_covers_every_expected_file(corpus: tuple[dict[str, Path], Path]) -> None:
    files, canary = corpus
    assert set(files) == set(EXPECTED_REASONS)
    assert not canary.exists()


@pytest.mark.parametrize("name", sorted(EXPECTED_REASONS))
def test_hostile_file_is_refused_with_a_clear_reason(
    corpus: tuple[dict[str, Path], Path], name: str
) -> None:
    files, canary = corpus
    data = files[name].read_bytes()

    with pytest.raises(InvalidInput) as caught:
        inspect_model_bytes(data, filename=name)

    message = str(caught.value)
    assert EXPECTED_REASONS[name].lower() in message.lower()
    assert skops_conversion_hint() in message
    assert f"file: {name}" in caught.value.details
    if name in MUST_BE_UNSAFE:
        assert isinstance(caught.value, UnsafeArtifact)
        assert "refused and not stored" in caught.value.user_message
    with pytest.raises(InvalidInput):
        load_model_bytes(data)
    assert not canary.exists()


def test_renamed_pickle_message_says_the_content_is_not_skops(
    corpus: tuple[dict[str, Path], Path],
) -> None:
    files, _ = corpus
    with pytest.raises(UnsafeArtifact) as caught:
        inspect_model_bytes(files["pickle_renamed.skops"].read_bytes(), filename="model.skops")
    assert any("named .skops but its content is a pickle" in d for d in caught.value.details)


@pytest.mark.parametrize(
    "name",
    [
        "reduce_os_system.pkl",
        "importlib_gadget.pkl",
        "builtins_eval.pkl",
        "posix_system_global.pkl",
        "subprocess_popen.pkl",
        "nested_in_estimator.joblib",
        "nested_in_object_array.joblib",
    ],
)
def test_restricted_unpicklers_refuse_even_without_the_scan(
    corpus: tuple[dict[str, Path], Path], name: str
) -> None:
    files, canary = corpus
    data = files[name].read_bytes()
    for has_arrays in (False, True):
        with pytest.raises(UnsafeArtifact):
            modelfile._unpickle(data, has_arrays=has_arrays)
    assert not canary.exists()


class _RecordingScan(modelfile._PickleScan):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[int] = []
        self.array_builds: list[int] = []

    def _step(self, name: str, arg: Any, pos: int) -> bool:
        if name == "FRAME":
            self.frames.append(pos)
        return super()._step(name, arg, pos)

    def _skip_array(self, wrapper: Any, pos: int) -> None:
        self.array_builds.append(pos)
        super()._skip_array(wrapper, pos)


def test_array_data_starting_inside_a_frame_is_refused(
    fitted: dict[str, tuple[Any, Any]],
) -> None:
    data = _joblib_bytes(fitted["logistic"][0], protocol=4)
    scan = _RecordingScan(io.BytesIO(data), modelfile._ScanResult(), joblib_mode=True)
    scan.run()
    build = scan.array_builds[0]
    frame = max(f for f in scan.frames if f < build)
    length = int.from_bytes(data[frame + 1 : frame + 9], "little")
    patched = (
        data[: frame + 1]
        + (length + 2).to_bytes(8, "little")
        + data[frame + 9 : build + 1]
        + b"N0"
        + data[build + 1 :]
    )
    with pytest.raises(UnsafeArtifact) as caught:
        load_model_bytes(patched)
    assert "inside a pickle frame" in caught.value.user_message


def test_trees_whose_nodes_point_back_are_refused(fitted: dict[str, tuple[Any, Any]]) -> None:
    forest = copy.deepcopy(fitted["forest"][0])
    tree = forest.estimators_[3].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = int(np.flatnonzero(nodes["left_child"] != -1)[0])
    nodes["left_child"][inner] = inner
    tree.__setstate__({**state, "nodes": nodes})

    boosted = copy.deepcopy(fitted["hgb_clf"][0])
    predictor = boosted._predictors[2][0]
    predictor.nodes = predictor.nodes.copy()
    predictor.nodes["right"][0] = len(predictor.nodes) + 5

    for model in (forest, boosted):
        for data in (pickle.dumps(model, protocol=5), _joblib_bytes(model), sio.dumps(model)):
            with pytest.raises(UnsafeArtifact) as caught:
                load_model_bytes(data)
            assert "decision tree whose nodes point outside the tree" in str(caught.value)


def test_dtype_state_changed_after_it_was_built_is_refused() -> None:
    original = pickle.dumps(np.dtype([("a", "<f8")]), protocol=2)
    ops = list(pickletools.genops(original))
    after_dict = next(i for i, (op, _, _) in enumerate(ops) if op.name == "EMPTY_DICT") + 1
    assert ops[after_dict][0].name == "BINPUT"
    memo_index = ops[after_dict][1]
    tamper = b"h" + bytes([memo_index]) + b"X\x01\x00\x00\x00aX\x04\x00\x00\x00junks0"
    data = original[:-1] + tamper + b"."
    with pytest.raises(UnsafeArtifact) as caught:
        load_model_bytes(data)
    assert "changes an array element type after it was built" in caught.value.user_message


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x7f\x85R.",
        b"\x80\x02c__builtin__\nbytes\ncnumpy\nint64\nJ\x00\x00\x00\x7f\x85R\x85R.",
    ],
)
def test_allowed_types_asked_for_huge_allocations_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeArtifact) as caught:
        load_model_bytes(data)
    assert "huge allocation" in caught.value.user_message


def test_loading_a_forest_adds_little_over_joblib() -> None:
    X, y = make_classification(2000, 20, random_state=0)
    model = RandomForestClassifier(120, random_state=0).fit(X, y)
    data = _joblib_bytes(model)
    load_model_bytes(data)
    extra = []
    for _ in range(3):
        start = time.perf_counter()
        joblib.load(io.BytesIO(data))
        plain = time.perf_counter() - start
        start = time.perf_counter()
        load_model_bytes(data)
        extra.append(time.perf_counter() - start - plain)
    assert min(extra) < 1.0


# ---------------------------------------------------------------------------
# Fuzzing: nothing but QuorumError ever escapes


def _small_model_files() -> list[bytes]:
    X, y = make_classification(40, 5, random_state=0)
    model = LogisticRegression().fit(X, y)
    return [
        pickle.dumps(model, protocol=5),
        pickle.dumps(model, protocol=2),
        _joblib_bytes(model),
        _joblib_bytes(model, compress=3),
        sio.dumps(model),
    ]


SMALL_FILES = _small_model_files()
PREFIXES = [
    b"",
    b"\x80\x04",
    b"\x80\x02",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"x\x9c",
    b"BZh",
    b"\x80\x05",
]


def _check_never_escapes(data: bytes) -> None:
    try:
        result = inspect_model_bytes(data, max_bytes=1_000_000)
    except QuorumError:
        return
    assert isinstance(result, InspectedModel)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=600))
def test_random_bytes_only_raise_quorum_errors(prefix: bytes, body: bytes) -> None:
    _check_never_escapes(prefix + body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(SMALL_FILES) - 1),
    position=st.floats(0, 1),
    replacement=st.binary(min_size=1, max_size=8),
    cut=st.booleans(),
)
def test_damaged_model_files_only_raise_quorum_errors(
    index: int, position: float, replacement: bytes, cut: bool
) -> None:
    original = SMALL_FILES[index]
    at = int(position * (len(original) - 1))
    damaged = original[:at] if cut else original[:at] + replacement + original[at + 8 :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_never_escapes(damaged)
