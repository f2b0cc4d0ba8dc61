"""Compliance checklist templates: JSON files in ``data/checklists/``, validated on load.

A template applies to a model when the model's risk tier is one of ``risk_tiers`` (or the
list is empty) and, if ``tags_any`` is not empty, at least one of the model's tags has one
of the listed values. Tag values compare case-insensitively; a tag value may list several
values separated by commas (``region=eu,us``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError, InvalidInput

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "data" / "checklists"

RISK_TIERS = ("low", "medium", "high")
EVIDENCE_HINTS = (
    "evaluation",
    "fairness",
    "drift_report",
    "review_thread",
    "model_card",
    "document",
)
TEMPLATE_FIELDS = ("key", "name", "version", "description", "applies_when", "items")
ITEM_FIELDS = ("key", "section", "title", "guidance", "evidence_hint", "required")
APPLIES_WHEN_FIELDS = ("risk_tiers", "tags_any")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,79}$")


@dataclass(frozen=True)
class ChecklistItemTemplate:
    key: str
    section: str
    title: str
    guidance: str
    evidence_hint: str
    required: bool

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ITEM_FIELDS}


@dataclass(frozen=True)
class ChecklistTemplate:
    key: str
    name: str
    version: str
    description: str
    applies_when: dict[str, Any] = field(hash=False)
    items: tuple[ChecklistItemTemplate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "applies_when": {
                "risk_tiers": list(self.applies_when.get("risk_tiers", [])),
                "tags_any": {
                    tag: list(values)
                    for tag, values in self.applies_when.get("tags_any", {}).items()
                },
            },
            "items": [item.to_dict() for item in self.items],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def item(self, key: str) -> ChecklistItemTemplate:
        for candidate in self.items:
            if candidate.key == key:
                return candidate
        raise InvalidInput(f"Checklist {self.key!r} has no item {key!r}.")

    def applies_to(self, risk_tier: str, tags: Mapping[str, str]) -> bool:
        tiers = self.applies_when.get("risk_tiers", [])
        if tiers and risk_tier.strip().lower() not in tiers:
            return False
        wanted: Mapping[str, list[str]] = self.applies_when.get("tags_any", {})
        if not wanted:
            return True
        model_tags = _normalise_tags(tags)
        return any(set(values) & model_tags.get(tag, set()) for tag, values in wanted.items())


def _normalise_tags(tags: Mapping[str, str]) -> dict[str, set[str]]:
    normalised: dict[str, set[str]] = {}
    for tag, value in tags.items():
        parts = {part.strip().lower() for part in str(value).split(",") if part.strip()}
        normalised.setdefault(str(tag).strip().lower(), set()).update(parts)
    return normalised


def _where(source: str, path: str) -> str:
    prefix = f"{source}: " if source else ""
    return f"{prefix}field '{path}'"


def _reject_unknown(
    data: Mapping[str, Any], allowed: tuple[str, ...], source: str, path: str
) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        location = f"{path}." if path else ""
        raise InvalidInput(
            f"{_where(source, location + unknown[0])} is not part of the checklist schema.",
            details=[f"allowed fields here: {', '.join(allowed)}"],
        )


def _text(data: Mapping[str, Any], name: str, source: str, path: str) -> str:
    location = f"{path}.{name}" if path else name
    if name not in data:
        raise InvalidInput(f"{_where(source, location)} is missing; add it as a text value.")
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{_where(source, location)} must be non-empty text; got {value!r}.")
    return value.strip()


def _key(data: Mapping[str, Any], source: str, path: str) -> str:
    value = _text(data, "key", source, path)
    if not KEY_PATTERN.match(value):
        location = f"{path}.key" if path else "key"
        raise InvalidInput(
            f"{_where(source, location)} is {value!r}; use lower-case letters, digits and "
            "underscores, starting with a letter (for example 'art9_risk_management')."
        )
    return value


def _parse_applies_when(raw: Any, source: str) -> dict[str, Any]:
    if raw is None:
        return {"risk_tiers": [], "tags_any": {}}
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            f"{_where(source, 'applies_when')} must be an object such as "
            '{"risk_tiers": ["high"], "tags_any": {"region": ["eu"]}}; got ' + repr(raw) + "."
        )
    _reject_unknown(raw, APPLIES_WHEN_FIELDS, source, "applies_when")
    tiers = raw.get("risk_tiers") or []
    if not isinstance(tiers, list) or any(tier not in RISK_TIERS for tier in tiers):
        raise InvalidInput(
            f"{_where(source, 'applies_when.risk_tiers')} must be a list drawn from "
            f"{', '.join(RISK_TIERS)}; got {tiers!r}."
        )
    tags_any = raw.get("tags_any") or {}
    if not isinstance(tags_any, Mapping):
        raise InvalidInput(
            f"{_where(source, 'applies_when.tags_any')} must map a tag name to a list of "
            f"values; got {tags_any!r}."
        )
    parsed_tags: dict[str, list[str]] = {}
    for tag, values in tags_any.items():
        valid = isinstance(values, list) and values
        if not valid or not all(isinstance(v, str) and v.strip() for v in values):
            raise InvalidInput(
                f"{_where(source, f'applies_when.tags_any.{tag}')} must be a non-empty list "
                f"of text values; got {values!r}."
            )
        parsed_tags[str(tag).strip().lower()] = [v.strip().lower() for v in values]
    ordered_tiers = [tier for tier in RISK_TIERS if tier in tiers]
    return {"risk_tiers": ordered_tiers, "tags_any": parsed_tags}


def _parse_item(raw: Any, index: int, source: str) -> ChecklistItemTemplate:
    path = f"items[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{_where(source, path)} must be an object; got {raw!r}.")
    _reject_unknown(raw, ITEM_FIELDS, source, path)
    hint = _text(raw, "evidence_hint", source, path)
    if hint not in EVIDENCE_HINTS:
        raise InvalidInput(
            f"{_where(source, path + '.evidence_hint')} is {hint!r}; use one of "
            f"{', '.join(EVIDENCE_HINTS)}."
        )
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise InvalidInput(
            f"{_where(source, path + '.required')} must be true or false; got {required!r}."
        )
    return ChecklistItemTemplate(
        key=_key(raw, source, path),
        section=_text(raw, "section", source, path),
        title=_text(raw, "title", source, path),
        guidance=_text(raw, "guidance", source, path),
        evidence_hint=hint,
        required=required,
    )


def parse_template(data: dict[str, Any], source: str = "") -> ChecklistTemplate:
    """Validate one template's data; errors name the source and the offending field."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"{source or 'The checklist template'} must hold a JSON object; got "
            f"{type(data).__name__}."
        )
    _reject_unknown(data, TEMPLATE_FIELDS, source, "")
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise InvalidInput(f"{_where(source, 'items')} must be a non-empty list of items.")
    items = tuple(_parse_item(raw, index, source) for index, raw in enumerate(raw_items))
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.key in seen:
            raise InvalidInput(
                f"{_where(source, f'items[{index}].key')} repeats {item.key!r}; "
                "each item needs its own key."
            )
        seen.add(item.key)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput(f"{_where(source, 'description')} must be text.")
    return ChecklistTemplate(
        key=_key(data, source, ""),
        name=_text(data, "name", source, ""),
        version=_text(data, "version", source, ""),
        description=description.strip(),
        applies_when=_parse_applies_when(data.get("applies_when"), source),
        items=items,
    )


def parse_template_json(text: str, source: str = "") -> ChecklistTemplate:
    """Parse a template from JSON text, as pasted by an admin or read from a file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{source or 'The checklist template'} is not valid JSON: {error.msg} at line "
            f"{error.lineno}, column {error.colno}."
        ) from error
    return parse_template(data, source)


def load_templates(directory: Path = DEFAULT_TEMPLATE_DIR) -> list[ChecklistTemplate]:
    """Every ``*.json`` template in ``directory``, sorted by key; keys must be unique."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigurationError(
            f"The checklist template folder {folder} does not exist; point the setting at "
            "the project's data/checklists folder."
        )
    templates: dict[str, ChecklistTemplate] = {}
    origins: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(f"{path.name} is not UTF-8 text; save it as UTF-8.") from error
        template = parse_template_json(text, path.name)
        if template.key in templates:
            raise InvalidInput(
                f"{path.name}: field 'key' is {template.key!r}, already used by "
                f"{origins[template.key]}; give each template its own key."
            )
        templates[template.key] = template
        origins[template.key] = path.name
    return [templates[key] for key in sorted(templates)]


def applicable_templates(
    templates: Iterable[ChecklistTemplate], risk_tier: str, tags: Mapping[str, str]
) -> list[ChecklistTemplate]:
    """The templates whose ``applies_when`` matches this risk tier and these tags."""
    tier = risk_tier.strip().lower()
    if tier not in RISK_TIERS:
        raise InvalidInput(
            f"Risk tier {risk_tier!r} is not known; use one of {', '.join(RISK_TIERS)}."
        )
    return [template for template in templates if template.applies_to(tier, tags)]


# --- crosswalks: one piece of evidence, several frameworks ------------------------------------

DEFAULT_CROSSWALK_FILE = (
    Path(__file__).resolve().parents[1] / "data" / "crosswalks" / "crosswalks.json"
)


@dataclass(frozen=True)
class CrosswalkSource:
    key: str
    title: str
    publisher: str
    year: str
    url: str

    def cite(self) -> str:
        return f"{self.title} ({self.publisher}, {self.year}), {self.url}"


@dataclass(frozen=True)
class Crosswalk:
    """Two checklist items a cited published crosswalk maps to each other."""

    first: tuple[str, str]  # (template key, item key)
    second: tuple[str, str]
    source: CrosswalkSource
    says: str

    def other(self, template_key: str, item_key: str) -> tuple[str, str] | None:
        if (template_key, item_key) == self.first:
            return self.second
        if (template_key, item_key) == self.second:
            return self.first
        return None


def load_crosswalks(
    templates: Iterable[ChecklistTemplate], path: Path = DEFAULT_CROSSWALK_FILE
) -> list[Crosswalk]:
    """The shipped crosswalk pairs; every pair names existing items and a cited source."""
    known = {(t.key, i.key) for t in templates for i in t.items}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    sources = {
        key: CrosswalkSource(key, s["title"], s["publisher"], s["year"], s["url"])
        for key, s in data.get("sources", {}).items()
    }
    pairs = []
    for number, row in enumerate(data.get("mappings", [])):
        ends = [tuple(str(x).split("/", 1)) for x in row.get("items", [])]
        if len(ends) != 2 or any(len(e) != 2 or e not in known for e in ends):
            raise ConfigurationError(
                f"{Path(path).name}: mapping {number} names {row.get('items')}; each mapping "
                "names two items as 'template/item' of the shipped checklist templates."
            )
        if row.get("source") not in sources or not str(row.get("says", "")).strip():
            raise ConfigurationError(
                f"{Path(path).name}: mapping {number} must cite one of the sources "
                f"({', '.join(sources)}) and say what the source states."
            )
        first, second = (ends[0][0], ends[0][1]), (ends[1][0], ends[1][1])
        pairs.append(Crosswalk(first, second, sources[row["source"]], str(row["says"])))
    return pairs
