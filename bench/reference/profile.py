"""The eight character categories (API.md's Profile table) as pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Category(BaseModel):
    model_config = ConfigDict(extra="allow")


class Identity(_Category):
    name: str
    age: str
    gender: str
    occupation: str
    background: str
    appearance: str
    titles: str


class Personality(_Category):
    traits: str
    values: str
    emotional_style: str
    speech_style: str
    likes: str
    dislikes: str
    motivation: str


class Backstory(_Category):
    origin: str
    experiences: list[str]
    current_situation: str
    relationships: list[str]
    secret: str


class Abilities(_Category):
    knowledge: str
    skills: str
    limitations: str


class Dialogue(_Category):
    tone: str
    language_style: str
    constraints: str
    interaction_style: str


class Tasks(_Category):
    goal: str
    intent: str
    off_limits: str
    triggers: str


class World(_Category):
    era: str
    setting: str
    social_order: str
    rules: str


class System(_Category):
    role_rules: str
    reply_length: str
    knowledge_cutoff: str
    safety_notes: str


CATEGORIES: dict[str, type[BaseModel]] = {
    "identity": Identity,
    "personality": Personality,
    "backstory": Backstory,
    "abilities": Abilities,
    "dialogue": Dialogue,
    "tasks": Tasks,
    "world": World,
    "system": System,
}


def profile_status(profile: dict[str, Any]) -> str:
    """``ready`` when all eight categories are present, else ``partial``."""
    return "ready" if all(profile.get(name) for name in CATEGORIES) else "partial"


def full_profile(partial: dict[str, Any] | None) -> dict[str, Any]:
    """Every category key present; missing ones are ``None``."""
    given = partial or {}
    return {name: given.get(name) for name in CATEGORIES}


class Speakers(BaseModel):
    """The moderator's structured answer."""

    character_ids: list[str]
    reason: str
