"""The approval policy as one versioned schema: its fields, their labels, help, types, choices
and defaults per risk tier. The admin editor renders its form from FIELDS and `update_policy`
checks values against them, so a field added here appears in both with no other change.

Stored as a JSON document plus SCHEMA_VERSION in each `approval_policy_version` row; a
document written under an older schema version is brought up to date by `upgrade_document`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.models import ROLE_LABELS, RiskTier, Role

SCHEMA_VERSION = 4

MEANINGS = ("validated", "approved for production", "business accepted", "compliance reviewed")
ROLE_VALUES = tuple(r.value for r in Role)
SEVERITIES = ("low", "medium", "high")
BLOCKING_CHOICES = ("none", *SEVERITIES)
# model-card sections a policy may require before production (the purpose is always asked for)
CARD_SECTIONS = ("intended_use", "limitations", "data", "ethics", "caveats")


@dataclass(frozen=True)
class FieldSpec:
    """One policy field: how the editor shows it and how a value is checked."""

    name: str
    label: str
    help: str
    kind: str  # int | bool | roles | checklists | meanings | meaning_roles | months | choice | card_sections
    defaults: Mapping[str, Any]  # risk tier -> default value
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def default(self, tier: str) -> Any:
        value = self.defaults[tier]
        return dict(value) if isinstance(value, Mapping) else value


_SIGNOFF_ROLES = {
    "validated": ["reviewer"],
    "approved for production": ["compliance_officer"],
    "business accepted": ["business_stakeholder"],
    "compliance reviewed": ["compliance_officer"],
}


def _per_tier(low: Any, medium: Any, high: Any) -> dict[str, Any]:
    return {RiskTier.LOW: low, RiskTier.MEDIUM: medium, RiskTier.HIGH: high}


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "min_approvals",
        "Approvals needed",
        "How many people must approve a version in one review round.",
        "int",
        _per_tier(1, 1, 2),
        minimum=1,
        maximum=10,
    ),
    FieldSpec(
        "required_roles",
        "Roles that must be among the approvers",
        "Each role listed needs at least one approval from someone holding it.",
        "roles",
        _per_tier(["reviewer"], ["reviewer"], ["reviewer", "compliance_officer"]),
        choices=ROLE_VALUES,
    ),
    FieldSpec(
        "required_checklists",
        "Checklists required before production",
        "Every required item of these checklists must be met or marked not applicable.",
        "checklists",
        _per_tier([], [], []),
    ),
    FieldSpec(
        "required_signoffs",
        "Sign-offs required before production",
        "A signature of each of these meanings must still count (not expired, revoked or stale).",
        "meanings",
        _per_tier([], [], []),
        choices=MEANINGS,
    ),
    FieldSpec(
        "signoff_roles",
        "Who may sign each meaning",
        "The roles whose holders may give a signature of each meaning.",
        "meaning_roles",
        _per_tier(_SIGNOFF_ROLES, _SIGNOFF_ROLES, _SIGNOFF_ROLES),
        choices=ROLE_VALUES,
    ),
    FieldSpec(
        "staging_first",
        "Staging before production",
        "A version must have been live in staging before it may be promoted to production.",
        "bool",
        _per_tier(False, False, False),
    ),
    FieldSpec(
        "revalidation_months",
        "Revalidation interval (months)",
        "How long an approval stands before the model must be validated again; empty: never.",
        "months",
        _per_tier(None, 24, 12),
        minimum=1,
        maximum=120,
    ),
    FieldSpec(
        "blocking_finding_severity",
        "Open findings that block production",
        "An open finding of this severity or worse keeps a version out of production until it "
        "is closed; none: findings never block.",
        "choice",
        _per_tier("high", "high", "high"),
        choices=BLOCKING_CHOICES,
    ),
    FieldSpec(
        "required_card_sections",
        "Model-card sections required before production",
        "Each section listed must be written on the model card (Models page, Model card tab).",
        "card_sections",
        _per_tier([], [], list(CARD_SECTIONS)),
        choices=CARD_SECTIONS,
    ),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class PolicyFields:
    """The values of every policy field for one risk tier."""

    min_approvals: int
    required_roles: list[str] = field(default_factory=list)
    required_checklists: list[str] = field(default_factory=list)
    required_signoffs: list[str] = field(default_factory=list)
    signoff_roles: dict[str, list[str]] = field(default_factory=dict)
    staging_first: bool = False
    revalidation_months: int | None = None
    blocking_finding_severity: str = "high"
    required_card_sections: list[str] = field(default_factory=list)

    def as_document(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in FIELD_NAMES}

    def roles_for(self, meaning: str) -> list[str]:
        return list(self.signoff_roles.get(meaning, []))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: list(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return list(value)
    return value


def defaults(tier: str) -> PolicyFields:
    return PolicyFields(**{f.name: f.default(tier) for f in FIELDS})


# --- older documents --------------------------------------------------------------------------


def _from_1(document: dict[str, Any], tier: str) -> dict[str, Any]:
    """Schema 1 had the four approval fields only (the first policy table)."""
    upgraded = dict(document)
    for name in ("signoff_roles", "staging_first", "revalidation_months"):
        upgraded.setdefault(name, _BY_NAME[name].default(tier))
    return upgraded


def _from_2(document: dict[str, Any], tier: str) -> dict[str, Any]:
    """Schema 2 had no setting for findings that block production."""
    upgraded = dict(document)
    upgraded.setdefault(
        "blocking_finding_severity", _BY_NAME["blocking_finding_severity"].default(tier)
    )
    return upgraded


def _from_3(document: dict[str, Any], tier: str) -> dict[str, Any]:
    """Schema 3 had no required model-card sections: the tier's default applies."""
    upgraded = dict(document)
    upgraded.setdefault("required_card_sections", _BY_NAME["required_card_sections"].default(tier))
    return upgraded


UPGRADES: dict[int, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    1: _from_1,
    2: _from_2,
    3: _from_3,
}


def upgrade_document(document: Mapping[str, Any], schema_version: int, tier: str) -> dict[str, Any]:
    """A stored document brought to SCHEMA_VERSION, one step at a time."""
    current = dict(document)
    for version in range(schema_version, SCHEMA_VERSION):
        current = UPGRADES[version](current, tier)
    return current


def from_document(document: Mapping[str, Any], schema_version: int, tier: str) -> PolicyFields:
    current = upgrade_document(document, schema_version, tier)
    base = defaults(tier).as_document()
    base.update({k: v for k, v in current.items() if k in FIELD_NAMES})
    return PolicyFields(**base)


# --- checking what an admin entered -------------------------------------------------------


def check(values: Mapping[str, Any], tier: str, checklist_keys: tuple[str, ...]) -> PolicyFields:
    """Every field of `values` checked against its spec; missing fields keep their default.
    Raises InvalidInput naming the first field that is wrong."""
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise InvalidInput(
            f"Unknown policy field(s): {', '.join(unknown)}. Known: {', '.join(FIELD_NAMES)}."
        )
    merged = defaults(tier).as_document()
    merged.update(values)
    cleaned = {f.name: _check_field(f, merged[f.name], checklist_keys) for f in FIELDS}
    fields = PolicyFields(**cleaned)
    if len(fields.required_roles) > fields.min_approvals:
        raise InvalidInput(
            f"{len(fields.required_roles)} roles must be among the approvers, but only "
            f"{fields.min_approvals} approvals are needed; raise the number of approvals or "
            "require fewer roles."
        )
    return fields


def _check_field(spec: FieldSpec, value: Any, checklist_keys: tuple[str, ...]) -> Any:
    if spec.kind in ("int", "months"):
        return _check_int(spec, value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidInput(f"{spec.label} must be yes or no.")
        return value
    if spec.kind == "meaning_roles":
        return _check_meaning_roles(spec, value)
    if spec.kind == "choice":
        if value not in spec.choices:
            raise InvalidInput(
                f"{spec.label}: {value!r} is not one of {', '.join(spec.choices)}; pick one of them."
            )
        return value
    choices = checklist_keys if spec.kind == "checklists" else spec.choices
    return _check_choices(spec, value, choices)


def _check_int(spec: FieldSpec, value: Any) -> int | None:
    if value is None or value == "":
        if spec.kind == "months":
            return None
        raise InvalidInput(f"{spec.label} needs a number.")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{spec.label} must be a whole number, not {value!r}.")
    low, high = spec.minimum or 0, spec.maximum or 10**6
    if not low <= value <= high:
        raise InvalidInput(f"{spec.label} must be between {low} and {high}.")
    return value


def _check_choices(spec: FieldSpec, value: Any, choices: tuple[str, ...]) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise InvalidInput(f"{spec.label} must be a list.")
    wrong = sorted(str(v) for v in value if v not in choices)
    if wrong:
        raise InvalidInput(
            f"{spec.label}: {', '.join(wrong)} is not one of {', '.join(choices) or '(none)'}."
        )
    return sorted(set(value))


def _check_meaning_roles(spec: FieldSpec, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{spec.label} must name roles for each meaning.")
    wrong = sorted(str(m) for m in value if m not in MEANINGS)
    if wrong:
        raise InvalidInput(f"{spec.label}: {', '.join(wrong)} is not a sign-off meaning.")
    result = {}
    for meaning in MEANINGS:
        roles = value.get(meaning, [])
        label = f"{spec.label} ('{meaning}')"
        result[meaning] = _check_choices(
            FieldSpec(spec.name, label, "", "roles", {}), roles, ROLE_VALUES
        )
    return result


def changes(before: PolicyFields, after: PolicyFields) -> dict[str, dict[str, Any]]:
    """Every field whose value differs: {field: {"before": ..., "after": ...}}."""
    old, new = before.as_document(), after.as_document()
    return {
        name: {"before": old[name], "after": new[name]}
        for name in FIELD_NAMES
        if old[name] != new[name]
    }


def describe(value: Any, spec: FieldSpec) -> str:
    """A field's value in plain words, for pages and packs."""
    if spec.kind == "bool":
        return "yes" if value else "no"
    if spec.kind == "months":
        return "never" if value is None else f"{value} months"
    if spec.kind == "roles":
        return ", ".join(ROLE_LABELS[Role(r)] for r in value) or "any"
    if spec.kind == "meaning_roles":
        return "; ".join(
            f"{m}: " + (", ".join(ROLE_LABELS[Role(r)] for r in roles) or "nobody")
            for m, roles in value.items()
        )
    if spec.kind == "card_sections":
        return ", ".join(v.replace("_", " ") for v in value) or "none"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)
