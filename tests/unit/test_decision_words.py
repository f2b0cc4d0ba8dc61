"""How a comparison and an approval count read: parameter changes as before -> after lines,
and never more approvals "of" the number required."""

from __future__ import annotations

from core.services.compare import param_diff, param_lines
from core.services.reviews import PolicyStatus


def test_approvals_beyond_the_policy_are_not_shown_as_3_of_2() -> None:
    three = PolicyStatus(needed=2, counted=["Riley", "Morgan", "Casey"], missing_roles=[])
    assert three.explain() == ["3 approvals (2 required): Riley, Morgan, Casey"]
    one = PolicyStatus(needed=2, counted=["Riley"], missing_roles=["compliance_officer"])
    assert one.explain()[0] == "1 of 2 approvals: Riley"
    assert PolicyStatus(needed=1, counted=[], missing_roles=[]).explain() == ["0 of 1 approvals"]


def test_parameter_changes_read_as_before_and_after() -> None:
    rows = param_diff(
        {"C": 0.01, "penalty": "l2", "solver": "saga", "grid": list(range(60))},
        {"C": 1.0, "penalty": "l2", "max_iter": 100, "grid": []},
    )
    lines = param_lines(rows)
    assert lines[0] == "C: 1.0 → 0.01"
    assert lines[1].startswith("grid: [] → [0, 1, 2,") and lines[1].endswith("…")
    assert len(lines[1]) == 90
    assert lines[2:] == [
        "max_iter: 100 (not in the candidate)",
        "solver: 'saga' (new in the candidate)",
    ]
    assert param_lines([]) == []
