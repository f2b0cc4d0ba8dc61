"""The events a person or a team webhook may choose to hear of, and the inbox kinds in each."""

from __future__ import annotations

EVENTS: dict[str, str] = {
    "review_requested": "A review is requested of you",
    "decision": "A decision is made on a version you registered",
    "mention": "Someone mentions you in a comment",
    "deployment": "A version is promoted or rolled back",
    "incident": "An incident opens or closes",
    "signoff_expiring": "A sign-off expires soon",
    "finding": "A finding is raised, falls due or is answered",
    "revalidation": "A revalidation falls due or fails",
    "digest": "The weekly digest of how the models do",
}

_KINDS: dict[str, str] = {
    "review_requested": "review_requested",
    "changes_requested": "decision",
    "rejected": "decision",
    "approved": "decision",
    "mention": "mention",
    "alert": "incident",
    "signoff_expiring": "signoff_expiring",
}

# events a webhook never carries: a digest is written for one person
PERSONAL_ONLY = frozenset({"digest"})


def event_of(kind: str) -> str:
    """The event an inbox kind belongs to: 'finding.due' -> 'finding', 'alert' -> 'incident'."""
    if kind in _KINDS:
        return _KINDS[kind]
    head = kind.split(".", 1)[0]
    return head if head in EVENTS else kind[:40]


def label(event: str) -> str:
    return EVENTS.get(event, event)
