"""In-prompt directives: a test driving the app over HTTP shapes one upstream request.

Grammar (one setting per directive, any number of directives, anywhere in any message)::

    directive := "[[fake:" setting "]]"
    setting   := "ttft=" SECONDS          first-token delay
               | "tokens=" INT            content chunks in the reply
               | "tps=" NUMBER            tokens per second (0 = no pacing)
               | "chunk=" INT             characters per chunk
               | "keepalive=" SECONDS     keep-alive comment interval (0 = none)
               | "usage=" STYLE           empty_choices | empty_delta_choice
               | "fault=" FAULT
               | "say=" TEXT              a plain reply is "[fake] " + TEXT (no "]" in TEXT)
               | "fail_model=" MODEL      that model fails (repeatable): a request's
                                          ``models`` fallback list is answered by the first
                                          model that does not fail (its name in the chunks);
                                          when every one fails, HTTP 502
    FAULT     := NAME (":" PARAM "=" VALUE)*
    NAME      := "http_" STATUS           e.g. http_500, http_402
               | "rate_limit"             http_429
               | any other Fault kind     mid_stream_error, error_only, hang, hang_after,
                                          truncate, invalid_json, json_in_fence, disconnect
    PARAM     := after                    content chunks before the fault (Fault.after_chunks)
               | retry_after              seconds, or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT")
               | retry_after_ms | status | code (int or str) | message
               | keepalives | graceful   0/1/true/false
               | times                    apply to only the first N identical requests

Examples: ``[[fake:fault=http_500]]``, ``[[fake:fault=rate_limit:retry_after=1]]``,
``[[fake:fault=mid_stream_error:after=3:code=502]]``, ``[[fake:ttft=0.3]]``, ``[[fake:tps=0]]``,
``[[fake:fail_model=openai/gpt-4o]]``.

Messages are read in order with the last user message read last, so its directives win; within a
message a later directive wins. A directive fault takes precedence over the queued faults (the queue
is then not consumed). ``times=N`` counts requests with the same messages and directive text, so a
client's retry of the same request gets past ``[[fake:fault=http_503:times=1]]``. An unknown
directive is a 400 from the fake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm.fake.behaviour import USAGE_CHUNK_STYLES, InvalidFakeConfig, UsageChunkStyle
from llm.fake.content import message_text
from llm.fake.faults import FAULT_KINDS, Fault

_DIRECTIVE = re.compile(r"\[\[fake:([a-z_]+)=([^\]]*)\]\]")
_PARAM_SEPARATOR = re.compile(r":(?=[a-z_]+=)")
_HTTP_NAME = re.compile(r"http_(\d{3})")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class Directives:
    """Per-request overrides found in the messages (None = use the behaviour)."""

    ttft: float | None = None
    tokens: int | None = None
    tps: float | None = None
    chunk_chars: int | None = None
    keepalive: float | None = None
    usage_style: UsageChunkStyle | None = None
    fault: Fault | None = None
    fault_times: int | None = None
    fault_text: str | None = None
    """The directive's text, which keys the ``times`` counter."""
    say: str | None = None
    """The text of a plain (non-JSON) reply after `FAKE_MARK`, instead of the generated one."""
    fail_models: set[str] = field(default_factory=set)
    """Models that fail (``fail_model`` directives, all of them)."""


def parse_directives(messages: Sequence[Mapping[str, Any]]) -> Directives:
    """Collect the directives of all messages; the last user message's win."""
    ordered = list(messages)
    for index in range(len(ordered) - 1, -1, -1):
        if ordered[index].get("role") == "user":
            ordered.append(ordered.pop(index))
            break
    result = Directives()
    for message in ordered:
        for match in _DIRECTIVE.finditer(message_text(message)):
            _apply(result, match.group(1), match.group(2), match.group(0))
    return result


def _apply(result: Directives, key: str, value: str, text: str) -> None:
    try:
        if key == "ttft":
            result.ttft = _non_negative(float(value))
        elif key == "tokens":
            result.tokens = int(_non_negative(int(value)))
        elif key == "tps":
            result.tps = _non_negative(float(value))
        elif key == "chunk":
            result.chunk_chars = max(1, int(value))
        elif key == "keepalive":
            result.keepalive = _non_negative(float(value))
        elif key == "usage":
            if value not in USAGE_CHUNK_STYLES:
                raise InvalidFakeConfig(f"unknown usage style {value!r}")
            result.usage_style = value  # type: ignore[assignment]
        elif key == "say":
            result.say = value
        elif key == "fail_model":
            if not value:
                raise InvalidFakeConfig("fail_model needs a model name")
            result.fail_models.add(value)
        elif key == "fault":
            result.fault, result.fault_times = _parse_fault(value)
            result.fault_text = text
        else:
            raise InvalidFakeConfig(f"unknown directive {text!r}")
    except ValueError as exc:
        raise InvalidFakeConfig(f"bad directive {text!r}: {exc}") from exc


def _parse_fault(spec: str) -> tuple[Fault, int | None]:
    name, *params = _PARAM_SEPARATOR.split(spec)
    fields: dict[str, Any] = {}
    http = _HTTP_NAME.fullmatch(name)
    if http:
        fields.update(kind="http_status", status=int(http.group(1)))
    elif name == "rate_limit":
        fields.update(kind="http_status", status=429)
    elif name in FAULT_KINDS:
        fields["kind"] = name
    else:
        raise InvalidFakeConfig(f"unknown fault {name!r}")
    times: int | None = None
    for param in params:
        key, _, value = param.partition("=")
        if key == "after":
            fields["after_chunks"] = int(value)
        elif key == "retry_after":
            fields["retry_after"] = _number_or_text(value)
        elif key in ("retry_after_ms", "status"):
            fields[key] = int(value)
        elif key == "code":
            fields["code"] = int(value) if value.lstrip("-").isdigit() else value
        elif key == "message":
            fields["message"] = value
        elif key in ("keepalives", "graceful"):
            fields[key] = _flag(value)
        elif key == "times":
            times = int(value)
        else:
            raise InvalidFakeConfig(f"unknown fault parameter {key!r}")
    return Fault(**fields), times


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidFakeConfig(f"not a flag: {value!r}")


def _non_negative(value: float) -> float:
    if value < 0:
        raise InvalidFakeConfig("must be >= 0")
    return value
