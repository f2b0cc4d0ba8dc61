"""How a comparison and an approval count read: parameter changes as before -> after lines,
and never more approvals "of" the number required."""

from __future__ import annotations

from core.services.compare import param_diff, param_lines, param_table
from core.services.reviews import PolicyStatus


def test_approvals_beyond_the_policy_are_not_shown_as_3_of_2() -> None:
    three = PolicyStatus(needed=2, counted=["Riley", "Morgan", "Casey"], missing_roles=[])
    assert three.explain() == ["3 approvals (2 required): Riley, Morgan, Casey"]
    one = PolicyStatus(needed=2, counted=["Riley"], missing_roles=["compliance_officer"])
    assert one.explain()[0] == "1 of 2 approvals: Riley"
    assert PolicyStatus(needed=1, counted=[], missing_roles=[]).explain() == ["0 of 1 approvals"]


def test_parameter_changes_read_as_before_and_after() -> None:
    rows = param_diff(
        {"C": 0.01, "penalty": "l2", "solver": "saga", "grid": list(range(60)), "w": None},
        {"C": 1.0, "penalty": "l2", "max_iter": 100, "grid": [], "w": "balanced"},
    )
    lines = param_lines(rows)
    assert lines[0] == "C: 1 → 0.01"
    assert lines[1] == "grid: [] → [" + ", ".join(str(i) for i in range(60)) + "]"
    assert lines[2:] == [
        "max_iter: 100 → not set",
        "solver: not set → saga",
        "w: balanced → none",
    ]
    assert param_lines([]) == []


def test_the_parameter_table_names_pipeline_steps_and_keeps_values_whole() -> None:
    rows = param_diff(
        {"clf__max_depth": 5, "clf__class_weight": {"0": 1, "1": 3}, "scale__with_mean": True},
        {"clf__max_depth": 3, "clf__class_weight": None, "scale__with_mean": True},
    )
    assert param_table(rows) == [
        {"Parameter": "clf › class_weight", "Before": "none", "After": '{"0": 1, "1": 3}'},
        {"Parameter": "clf › max_depth", "Before": "3", "After": "5"},
    ]


def test_pipeline_steps_read_as_the_arguments_that_changed() -> None:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from core.modelfile.describe import _json_safe
    from core.services.compare import readable_params

    def stored(pipeline: Pipeline) -> dict:
        return {k: _json_safe(v) for k, v in pipeline.get_params(deep=False).items()}

    old = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=0.5))])
    new = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=2.0))])
    lines = param_lines(param_diff(readable_params(stored(new)), readable_params(stored(old))))
    assert lines == ["model › C: 0.5 → 2.0"]

    swap = Pipeline([("model", GradientBoostingClassifier(learning_rate=0.05))])
    other = Pipeline([("model", HistGradientBoostingClassifier(class_weight="balanced"))])
    lines = param_lines(param_diff(readable_params(stored(other)), readable_params(stored(swap))))
    assert lines == [
        "model: GradientBoostingClassifier → HistGradientBoostingClassifier",
        "model › class_weight: not set → balanced",
        "model › learning_rate: 0.05 → not set",
    ]
    assert readable_params({"C": 1.0, "note": "not (an estimator"}) == {
        "C": 1.0,
        "note": "not (an estimator",
    }
