"""Parameters, not only types: what a loaded model may do when it runs (issue 12)."""

from __future__ import annotations

import base64
import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from core import config
from core.errors import UnsafeArtifact
from core.modelfile import inspect_model_bytes
from core.modelfile.parameters import require_safe_parameters

TEXT = pd.Series(["late payment", "paid early", "new customer", "late again"])
LABELS = np.array([1, 0, 0, 1])


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def text_pipeline(**vectorizer: object) -> object:
    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(TEXT, LABELS)
    model[0].set_params(**vectorizer)
    return model


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (make_pipeline(CountVectorizer(input="filename"), LogisticRegression()), ".input"),
        (make_pipeline(TfidfVectorizer(input="file"), LogisticRegression()), ".input"),
        (HashingVectorizer(analyzer=np.float64), ".analyzer"),
        (text_pipeline(tokenizer=str.split), ".tokenizer"),
        (text_pipeline(preprocessor=str.lower), ".preprocessor"),
        (text_pipeline(token_pattern=r"(?:a|aa)+$"), ".token_pattern"),
        (make_pipeline(FunctionTransformer(func=print), LogisticRegression()), ".func"),
        (make_pipeline(FunctionTransformer(func=float), LogisticRegression()), ".func"),
        (KNeighborsClassifier(metric=_distance), ".metric"),
        (make_pipeline(OneHotEncoder(), LogisticRegression(), memory="/tmp/cache"), ".memory"),
    ],
)
def test_unsafe_parameter_is_refused_and_named(model: object, named: str) -> None:
    with pytest.raises(UnsafeArtifact) as refused:
        require_safe_parameters(model)
    assert named in refused.value.user_message
    assert refused.value.details and named in refused.value.details[0]


def test_safe_parameters_pass() -> None:
    for model in (
        make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
        make_pipeline(OneHotEncoder(dtype=np.float32), LogisticRegression()),
        text_pipeline(),
        CountVectorizer(dtype=np.int32, stop_words="english", analyzer="char_wb"),
    ):
        require_safe_parameters(model)


def test_an_admin_allowed_pattern_passes_exactly() -> None:
    model = text_pipeline(token_pattern=r"\b\w+\b")
    require_safe_parameters(model, frozenset({r"\b\w+\b"}))
    with pytest.raises(UnsafeArtifact, match="token_pattern"):
        require_safe_parameters(model, frozenset({r"\b\w+\b "}))


def test_parameters_are_checked_on_load_for_every_format() -> None:
    model = text_pipeline(input="filename")
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    for data in (sio.dumps(model), pickle.dumps(model), buffer.getvalue()):
        with pytest.raises(UnsafeArtifact, match=r"\.input"):
            inspect_model_bytes(data)


def test_formats_outside_the_setting_are_refused_before_loading() -> None:
    model = LogisticRegression().fit(np.eye(4), LABELS)
    with pytest.raises(UnsafeArtifact, match="accepts only skops"):
        inspect_model_bytes(pickle.dumps(model), formats=("skops",))
    assert inspect_model_bytes(sio.dumps(model), formats=("skops",)).format == "skops"


def test_production_accepts_skops_only_unless_told_otherwise() -> None:
    production = {
        "QUORUM_ENV": "production",
        "QUORUM_AUTH": "oidc",
        "QUORUM_SECRET_KEY": "s" * 40,
        "QUORUM_COOKIE_SECRET": "c" * 40,
        "QUORUM_OIDC_SERVER_METADATA_URL": "https://idp.example/.well-known/openid-configuration",
        "QUORUM_OIDC_CLIENT_ID": "quorum",
        "QUORUM_OIDC_CLIENT_SECRET": "x",
        "QUORUM_AUDIT_KEY": "a" * 40,
        "QUORUM_AUDIT_SIGNING_KEY": base64.b64encode(b"k" * 32).decode(),
    }
    assert config.Settings.from_env(production).model_formats == ("skops",)
    chosen = {**production, "QUORUM_MODEL_FORMATS": "skops,joblib"}
    assert config.Settings.from_env(chosen).model_formats == ("skops", "joblib")
    assert config.Settings.from_env({}).model_formats == ("skops", "joblib", "pickle")
    problems = config.Settings(model_formats=("skops", "onnx")).problems()
    assert any("QUORUM_MODEL_FORMATS" in p and "onnx" in p for p in problems)
