"""Meanings, statuses and limits shared by checklists and sign-offs."""

from __future__ import annotations

from core.checklists import (
    EVIDENCE_HINTS,
)
from core.models import (
    VersionState,
)
from core.policy import MEANINGS as MEANINGS

STATUSES = ("open", "met", "not_applicable")
STATUS_LABELS = {"open": "Open", "met": "Met", "not_applicable": "Not applicable"}
EVIDENCE_KINDS = EVIDENCE_HINTS
LINK_KINDS = tuple(k for k in EVIDENCE_KINDS if k != "document")
EXPIRY_NOTICE_DAYS = 30
MAX_EXPIRY_DAYS = 3660
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
SIGNATURE, REVOCATION = "signature", "revocation"
QUEUE_STATES = (VersionState.IN_REVIEW, VersionState.APPROVED)
