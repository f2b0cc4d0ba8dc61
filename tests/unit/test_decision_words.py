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
