"""The Register page on the demo store: a new model is selected once created, chosen files
survive a change of model, a registered version links to its review, and a refused file is
explained in red, reason first, outside any collapsed box."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Element

from core.models import Role
from tests.ui.kit import DemoStore, choose, open_page

PAGE = "pages/2_Register.py"
NEW = "ui-churn-predictor"
MODEL_KEY, EVAL_KEY = "upload_model_file", "upload_eval_file"


def _files() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"tenure": rng.normal(size=200), "calls": rng.normal(size=200)})
    frame["y"] = (frame["calls"] - frame["tenure"] > 0).astype(int)
    model = LogisticRegression().fit(frame[["tenure", "calls"]], frame["y"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


def _upload(at: AppTest, model: tuple[str, bytes], evaluation: tuple[str, bytes]) -> None:
    at.file_uploader(key=MODEL_KEY).set_value((model[0], model[1], "application/octet-stream"))
    at.file_uploader(key=EVAL_KEY).set_value((evaluation[0], evaluation[1], "text/csv"))


def _chosen_files(at: AppTest) -> list[str]:
    names = []
    for key in (MODEL_KEY, EVAL_KEY):
        value: Any = at.file_uploader(key=key).value
        names.append(value.name if value is not None else "")
    return names


def _click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.proto.label == label).click()
    return at.run()


def _ancestors_of_errors(node: Block | Element, path: tuple[str, ...] = ()) -> list[tuple]:
    """(block types above it, text) for every st.error in the tree."""
    if isinstance(node, Block):
        found = []
        for child in node.children.values():
            found += _ancestors_of_errors(child, (*path, node.type))
        return found
    return [(path, node.value)] if node.type == "error" else []


def test_create_then_register_then_link_to_the_review(demo_env: DemoStore) -> None:
    at = open_page(PAGE, demo_env.user_ids[Role.DATA_SCIENTIST])
    at.text_input(key="nm_name").input(NEW)
    at.text_input(key="nm_target").input("y")
    _click(at, "Create model")
    assert not at.exception
    assert (
        at.selectbox(key="register_model").options[at.selectbox(key="register_model").index] == NEW
    )

    model_bytes, eval_bytes = _files()
    _upload(at, ("churn.skops", model_bytes), ("churn-eval.csv", eval_bytes))
    at.run()
    choose(at.selectbox(key="register_model"), "credit-default-scorer")
    at.run()
    assert _chosen_files(at) == ["churn.skops", "churn-eval.csv"], "switching model kept files"
    choose(at.selectbox(key="register_model"), NEW)
    at.run()
    assert _chosen_files(at) == ["churn.skops", "churn-eval.csv"]

    _click(at, "Check files")
    assert not at.exception and [s.value for s in at.subheader] == [f"Summary: {NEW}"]
    _click(at, "Register version")
    assert not at.exception
    links = [link.proto for link in at.main.get("page_link")]
    review = [p for p in links if p.page.endswith("3_Reviews.py") or "Reviews" in p.page]
    assert review, [p.label for p in links]
    assert f"{NEW} v1" in review[0].label
    assert "model=ui-churn-predictor" in review[0].query_string
    assert "version=1" in review[0].query_string


def test_a_refused_file_is_explained_in_red_reason_first(demo_env: DemoStore) -> None:
    at = open_page(PAGE, demo_env.user_ids[Role.DATA_SCIENTIST], {"model": "credit-default-scorer"})
    hostile = pickle.dumps(eval)  # names builtins.eval: never on the allow-list
    _, eval_bytes = _files()
    _upload(at, ("model.pkl", hostile), ("eval.csv", eval_bytes))
    _click(at, "Check files")
    assert not at.exception
    errors = _ancestors_of_errors(at._tree)
    assert errors, "the refusal is shown as an error"
    path, text = errors[0]
    assert not {"expandable", "status"} & set(path), f"the refusal is inside a box: {path}"
    assert "eval" in text and not text.startswith("The files were refused")
