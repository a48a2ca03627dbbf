"""The eight profile categories: one pydantic schema each (fields as in API.md).

`GENERATION_SCHEMAS` are strict (what the LLM must return); `INPUT_SCHEMAS` accept the same
fields, all optional, plus extra fields (what a user may PATCH in).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from storage.characters import CATEGORIES

# category -> (field, is_list)
FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "identity": tuple(
        (f, False)
        for f in ("name", "age", "gender", "occupation", "background", "appearance", "titles")
    ),
    "personality": tuple(
        (f, False)
        for f in (
            "traits",
            "values",
            "emotional_style",
            "speech_style",
            "likes",
            "dislikes",
            "motivation",
        )
    ),
    "backstory": (
        ("origin", False),
        ("experiences", True),
        ("current_situation", False),
        ("relationships", True),
        ("secret", False),
    ),
    "abilities": tuple((f, False) for f in ("knowledge", "skills", "limitations")),
    "dialogue": tuple(
        (f, False) for f in ("tone", "language_style", "constraints", "interaction_style")
    ),
    "tasks": tuple((f, False) for f in ("goal", "intent", "off_limits", "triggers")),
    "world": tuple((f, False) for f in ("era", "setting", "social_order", "rules")),
    "system": tuple(
        (f, False) for f in ("role_rules", "reply_length", "knowledge_cutoff", "safety_notes")
    ),
}

DESCRIPTIONS: dict[str, str] = {
    "identity": "who the character is: name, age, gender, occupation, background, look, titles",
    "personality": "traits, values, emotional and speech style, likes, dislikes, motivation",
    "backstory": "origin, formative experiences, current situation, relationships, a secret",
    "abilities": "what the character knows, can do, and cannot do",
    "dialogue": "how the character talks: tone, language style, constraints, interaction style",
    "tasks": "what the character wants in conversations: goal, intent, off-limits, triggers",
    "world": "the world around the character: era, setting, social order, rules",
    "system": "role-play rules for the model: role rules, reply length, knowledge cutoff, safety",
}


def _model(category: str, *, strict: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, is_list in FIELDS[category]:
        kind: Any = list[str] if is_list else str
        fields[name] = (kind, ...) if strict else (kind | None, None)
    config = ConfigDict(extra="forbid" if strict else "allow")
    suffix = "Generated" if strict else "Input"
    title = "".join(part.capitalize() for part in category.split("_")) + suffix
    model: type[BaseModel] = create_model(title, __config__=config, **fields)
    return model


GENERATION_SCHEMAS: dict[str, type[BaseModel]] = {c: _model(c, strict=True) for c in CATEGORIES}
INPUT_SCHEMAS: dict[str, type[BaseModel]] = {c: _model(c, strict=False) for c in CATEGORIES}


def validate_partial_profile(profile: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Validate a user-supplied partial profile; raises ValueError with field errors."""
    unknown = sorted(set(profile) - set(CATEGORIES))
    errors: list[dict[str, Any]] = [
        {"loc": ["profile", key], "msg": "unknown category", "type": "unknown_category"}
        for key in unknown
    ]
    out: dict[str, dict[str, Any] | None] = {}
    for category, value in profile.items():
        if category in unknown:
            continue
        if value is None:
            out[category] = None
            continue
        try:
            out[category] = (
                INPUT_SCHEMAS[category].model_validate(value).model_dump(exclude_none=True)
            )
        except ValidationError as exc:
            errors += [
                {"loc": ["profile", category, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
    if errors:
        raise ProfileError(errors)
    return out


class ProfileError(ValueError):
    """A partial profile failed validation; `errors` holds the field errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid profile")
        self.errors = errors
