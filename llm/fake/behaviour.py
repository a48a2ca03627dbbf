"""How the fake upstream behaves: the mutable `FakeBehaviour` knobs.

A plain dataclass so tests mutate it in place (``fake.behaviour.tokens = 5``) and the control
endpoint ``PUT /_fake/behaviour`` patches it from JSON (`FakeBehaviour.patch`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

UsageChunkStyle = Literal["empty_choices", "empty_delta_choice", "alternate"]
USAGE_CHUNK_STYLES: frozenset[str] = frozenset(get_args(UsageChunkStyle))

LINE_ENDINGS: frozenset[str] = frozenset({"\n", "\r\n", "\r"})


class InvalidFakeConfig(ValueError):
    """A behaviour patch, fault or in-prompt directive the fake cannot honour."""


@dataclass
class FakeBehaviour:
    """The knobs of the fake upstream; mutate in place, they apply to the next request.

    A "token" is one content chunk of ``chunk_chars`` characters.
    """

    first_token_delay: float = 0.05
    """Seconds of "thinking" before the first token (keep-alives are sent meanwhile)."""
    tokens: int = 100
    """Content chunks per reply (structured replies use as many as the JSON needs)."""
    tokens_per_second: float = 50.0
    """Pacing after the first token; 0 sends every token at once."""
    chunk_chars: int = 4
    keepalive_interval: float = 0.5
    """Seconds between ``: OPENROUTER PROCESSING`` comments while thinking; 0 disables them."""
    usage_chunk_style: UsageChunkStyle = "empty_delta_choice"
    """The usage chunk's ``choices``: ``[]``, one choice with an empty delta, or alternating."""
    cost_per_token: float = 0.000001
    """Dollars per prompt or completion token, reported as ``usage.cost``."""
    coalesce_interval: float = 0.0
    """Send every token due within this many seconds in one write (cheaper at high fan-out)."""
    line_ending: str = "\n"
    """SSE line terminator: ``"\\n"``, ``"\\r\\n"`` or ``"\\r"``."""
    split_utf8: bool = False
    """Write each SSE event in two pieces, split inside its first multi-byte character."""
    default_model: str = "fake/model"
    """The ``model`` reported when the request names none."""
    max_recorded: int = 10_000
    """Keep at most this many `RecordedRequest`s (oldest dropped)."""

    def __post_init__(self) -> None:
        for name, expected in _field_types().items():  # FakeBehaviour(first_token_delay=0)
            value = getattr(self, name)
            if expected is float and type(value) is int:
                setattr(self, name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raise `InvalidFakeConfig` if a field is out of range."""
        if self.first_token_delay < 0 or self.keepalive_interval < 0:
            raise InvalidFakeConfig("delays must be >= 0")
        if self.tokens < 0 or self.tokens_per_second < 0 or self.coalesce_interval < 0:
            raise InvalidFakeConfig("tokens, tokens_per_second and coalesce_interval must be >= 0")
        if self.chunk_chars < 1:
            raise InvalidFakeConfig("chunk_chars must be >= 1")
        if self.usage_chunk_style not in USAGE_CHUNK_STYLES:
            raise InvalidFakeConfig(f"unknown usage_chunk_style {self.usage_chunk_style!r}")
        if self.line_ending not in LINE_ENDINGS:
            raise InvalidFakeConfig("line_ending must be LF, CRLF or CR")
        if self.max_recorded < 0:
            raise InvalidFakeConfig("max_recorded must be >= 0")

    def patch(self, changes: Any) -> None:
        """Apply a JSON object of field changes atomically (all or nothing)."""
        if not isinstance(changes, dict):
            raise InvalidFakeConfig("a behaviour patch must be a JSON object")
        types = _field_types()
        unknown = set(changes) - set(types)
        if unknown:
            raise InvalidFakeConfig(f"unknown behaviour fields: {sorted(unknown)}")
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            expected = types[name]  # the declared type: the stored value may be an int for a float
            if expected is float and type(value) is int:  # not bool: True is no number here
                value = float(value)
            if type(value) is not expected:
                raise InvalidFakeConfig(f"{name} must be {expected.__name__}")
            converted[name] = value
        candidate = dataclasses.replace(self, **converted)  # validates
        for name in converted:
            setattr(self, name, getattr(candidate, name))

    def to_json(self) -> dict[str, Any]:
        """The behaviour as a JSON-ready dict."""
        return dataclasses.asdict(self)


@functools.cache
def _field_types() -> dict[str, type]:
    """Each field's declared runtime type (``str`` for a ``Literal`` of strings)."""
    return {
        name: type(get_args(hint)[0]) if get_origin(hint) is Literal else hint
        for name, hint in get_type_hints(FakeBehaviour).items()
    }
