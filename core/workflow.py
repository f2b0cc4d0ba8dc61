"""The version lifecycle as one table of transitions; pure, no database."""

from __future__ import annotations

from enum import StrEnum

from core.errors import InvalidTransition
from core.models import VersionState as S


class Action(StrEnum):
    SUBMIT = "submit for review"
    APPROVE = "approve"
    REQUEST_CHANGES = "request changes"
    REJECT = "reject"
    ARCHIVE = "archive"
    DEPLOY = "deploy"


_ACTIVE = frozenset({S.REGISTERED, S.IN_REVIEW, S.CHANGES_REQUESTED, S.APPROVED, S.REJECTED})

TRANSITIONS: dict[Action, tuple[frozenset[S], S | None]] = {
    Action.SUBMIT: (frozenset({S.REGISTERED, S.CHANGES_REQUESTED}), S.IN_REVIEW),
    Action.APPROVE: (frozenset({S.IN_REVIEW}), S.APPROVED),
    Action.REQUEST_CHANGES: (frozenset({S.IN_REVIEW}), S.CHANGES_REQUESTED),
    Action.REJECT: (frozenset({S.IN_REVIEW}), S.REJECTED),
    Action.ARCHIVE: (_ACTIVE, S.ARCHIVED),
    Action.DEPLOY: (frozenset({S.APPROVED}), None),
}

_WHY = {
    Action.SUBMIT: "only a registered version, or one whose changes were requested, can be "
    "submitted for review",
    Action.APPROVE: "only a version in review can be approved",
    Action.REQUEST_CHANGES: "only a version in review can have changes requested",
    Action.REJECT: "only a version in review can be rejected",
    Action.ARCHIVE: "an archived version stays archived",
    Action.DEPLOY: "only an approved version can be deployed",
}


def allowed(state: str, action: Action) -> bool:
    sources, _ = TRANSITIONS[action]
    return S(state) in sources


def next_state(state: str, action: Action) -> S:
    """The state after `action`, or InvalidTransition saying why it is not possible."""
    if not allowed(state, action):
        raise InvalidTransition(
            f"Cannot {action.value}: the version is {S(state).value.replace('_', ' ')}, and "
            f"{_WHY[action]}."
        )
    target = TRANSITIONS[action][1]
    return S(state) if target is None else target


def actions_from(state: str) -> list[Action]:
    return [a for a in Action if allowed(state, a)]
