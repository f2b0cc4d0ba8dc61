"""The version lifecycle: one test per (action, state) pair of the TRANSITIONS table."""

from __future__ import annotations

import itertools

import pytest

from core.errors import InvalidTransition
from core.models import VersionState
from core.workflow import TRANSITIONS, Action, actions_from, allowed, next_state

PAIRS = list(itertools.product(Action, VersionState))
ALLOWED = [(a, s) for a, s in PAIRS if s in TRANSITIONS[a][0]]
REFUSED = [(a, s) for a, s in PAIRS if s not in TRANSITIONS[a][0]]


def _id(pair: tuple[Action, VersionState]) -> str:
    action, state = pair
    return f"{action.name.lower()}-from-{state.value}"


EXPECTED_TARGET = {
    Action.SUBMIT: VersionState.IN_REVIEW,
    Action.APPROVE: VersionState.APPROVED,
    Action.REQUEST_CHANGES: VersionState.CHANGES_REQUESTED,
    Action.REJECT: VersionState.REJECTED,
    Action.ARCHIVE: VersionState.ARCHIVED,
}


@pytest.mark.parametrize("pair", ALLOWED, ids=_id)
def test_allowed_transition(pair: tuple[Action, VersionState]) -> None:
    action, state = pair
    assert allowed(state, action)
    assert action in actions_from(state)
    expected = EXPECTED_TARGET.get(action, state)  # deploying leaves the state as it is
    assert next_state(state.value, action) == expected


@pytest.mark.parametrize("pair", REFUSED, ids=_id)
def test_refused_transition(pair: tuple[Action, VersionState]) -> None:
    action, state = pair
    assert not allowed(state, action)
    assert action not in actions_from(state)
    with pytest.raises(InvalidTransition) as refused:
        next_state(state.value, action)
    message = refused.value.user_message
    assert message.startswith(f"Cannot {action.value}:")
    assert state.value.replace("_", " ") in message


def test_table_covers_every_pair_exactly_once() -> None:
    assert len(ALLOWED) + len(REFUSED) == len(Action) * len(VersionState)
    assert set(TRANSITIONS) == set(Action)


def test_expected_lifecycle_shape() -> None:
    assert {s for a, s in ALLOWED if a is Action.SUBMIT} == {
        VersionState.REGISTERED,
        VersionState.CHANGES_REQUESTED,
    }
    for decision in (Action.APPROVE, Action.REQUEST_CHANGES, Action.REJECT):
        assert {s for a, s in ALLOWED if a is decision} == {VersionState.IN_REVIEW}
    assert {s for a, s in ALLOWED if a is Action.DEPLOY} == {VersionState.APPROVED}
    assert {s for a, s in ALLOWED if a is Action.ARCHIVE} == set(VersionState) - {
        VersionState.ARCHIVED
    }


def test_archived_is_terminal() -> None:
    assert actions_from(VersionState.ARCHIVED) == []


def test_a_full_review_path_walks_the_table() -> None:
    state = VersionState.REGISTERED
    for action in (Action.SUBMIT, Action.REQUEST_CHANGES, Action.SUBMIT, Action.APPROVE):
        state = next_state(state, action)
    assert state is VersionState.APPROVED
    assert next_state(state, Action.DEPLOY) is VersionState.APPROVED
    assert next_state(state, Action.ARCHIVE) is VersionState.ARCHIVED


def test_unknown_state_is_not_silently_accepted() -> None:
    with pytest.raises(ValueError):
        next_state("deployed", Action.APPROVE)
