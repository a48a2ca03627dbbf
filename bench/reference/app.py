"""FastAPI routes of the reference server (the plan's steps 2-4: async routes, gather, stream).

Same paths and shapes as API.md for the routes the benchmark drives: register/login,
create and generate characters, one-to-one chat (JSON and SSE), groups and a group turn.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bench.reference.db import Database
from bench.reference.openrouter import OpenRouterAsync
from bench.reference.profile import CATEGORIES, Speakers, full_profile

HISTORY_MESSAGES = 20


@dataclass(frozen=True)
class ReferenceConfig:
    """Everything the reference server needs."""

    base_url: str
    api_key: str
    database_path: str
    model: str = "z-ai/glm-4-32b"
    max_concurrency: int = 2000
    per_call_client: bool = False


class ApiError(Exception):
    """An API.md error: status, snake_case code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Credentials(BaseModel):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=256)


class NewCharacter(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    profile: dict[str, dict[str, Any] | None] | None = None


class GenerateCharacter(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    source_text: str | None = Field(default=None, max_length=20_000)
    model: str | None = None


class ChatIn(BaseModel):
    content: str = Field(min_length=1, max_length=8_000)


class NewGroup(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    character_ids: list[str] = Field(min_length=2, max_length=8)
    strategy: Literal["moderator", "round_robin", "all"] = "moderator"
    max_speakers: int = Field(default=2, ge=1, le=8)


async def current_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """The bearer token's user (a synchronous sqlite3 lookup, as the plan does), or 401."""
    db: Database = request.app.state.db
    scheme, _, token = (authorization or "").partition(" ")
    user = db.user_for_token(token) if scheme.lower() == "bearer" and token else None
    if user is None:
        raise ApiError(401, "unauthenticated", "missing or unknown token")
    return user


User = Annotated[dict[str, Any], Depends(current_user)]


def create_app(config: ReferenceConfig) -> FastAPI:
    """Build the reference FastAPI application."""
    llm = OpenRouterAsync(
        base_url=config.base_url,
        api_key=config.api_key,
        model=config.model,
        max_concurrency=config.max_concurrency,
        per_call_client=config.per_call_client,
    )
    db = Database.open(config.database_path)
    hasher = PasswordHasher()
    generating: set[str] = set()  # conversations with a reply in flight
    last_speaker: dict[str, str] = {}  # group id -> character id (round robin)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await llm.aclose()
        db.close()

    app = FastAPI(title="FastNPC reference (origin plan)", lifespan=lifespan)
    app.state.db = db

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(
            400,
            "invalid_request",
            "invalid request",
            json.loads(json.dumps(exc.errors(), default=str)),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))

    def owned_character(user: dict[str, Any], character_id: str) -> dict[str, Any]:
        character = db.get_character(user["id"], character_id)
        if character is None:
            raise ApiError(404, "not_found", "no such character")
        return character

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        db.conn.execute("SELECT 1").fetchone()
        return {"status": "ready", "checks": {"database": "ok"}}

    @app.post("/api/auth/register", status_code=201)
    async def register(body: Credentials) -> dict[str, Any]:
        user = db.create_user(body.username, hasher.hash(body.password))
        if user is None:
            raise ApiError(409, "username_taken", "username taken")
        return {"user": user, "token": _issue_token(db, user["id"])}

    @app.post("/api/auth/login")
    async def login(body: Credentials) -> dict[str, Any]:
        found = db.user_credentials(body.username)
        try:
            if found is None or not hasher.verify(found[1], body.password):
                raise VerificationError
        except VerificationError:
            raise ApiError(401, "invalid_credentials", "wrong username or password") from None
        return {"user": found[0], "token": _issue_token(db, found[0]["id"])}

    @app.post("/api/characters", status_code=201)
    async def create_character(body: NewCharacter, user: User) -> dict[str, Any]:
        return db.create_character(user["id"], body.name, full_profile(body.profile), None)

    @app.post("/api/characters/generate", status_code=201)
    async def generate_character(body: GenerateCharacter, user: User) -> dict[str, Any]:
        names = list(CATEGORIES)
        results = await asyncio.gather(
            *(
                llm.get_openrouter_structured_json_async(
                    _category_prompt(body.name, name, body.source_text),
                    CATEGORIES[name],
                    body.model,
                )
                for name in names
            ),
            return_exceptions=True,
        )
        profile = {
            name: None if isinstance(result, BaseException) else result.model_dump()
            for name, result in zip(names, results, strict=True)
        }
        if not any(profile.values()):
            raise ApiError(502, "llm_error", "every category failed")
        return db.create_character(user["id"], body.name, profile, body.source_text)

    @app.post("/api/characters/{character_id}/chat", response_model=None)
    async def chat(
        character_id: str, body: ChatIn, request: Request, user: User
    ) -> dict[str, Any] | StreamingResponse:
        character = owned_character(user, character_id)
        conversation = f"c:{user['id']}:{character_id}"
        if conversation in generating:
            raise ApiError(409, "generation_in_progress", "a reply is being generated")
        prompt = _chat_prompt(character, db.recent_messages(conversation, HISTORY_MESSAGES))
        prompt.append({"role": "user", "content": body.content})
        user_message = db.add_message(conversation, "user", body.content, None)
        generating.add(conversation)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                _chat_events(conversation, character_id, user_message, prompt),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            text = await llm.get_openrouter_completion_async(prompt)
        except Exception as exc:
            raise ApiError(502, "llm_error", f"LLM call failed: {type(exc).__name__}") from exc
        finally:
            generating.discard(conversation)
        reply = db.add_message(conversation, "assistant", text, character_id)
        return {"user_message": user_message, "reply": reply}

    async def _chat_events(
        conversation: str,
        character_id: str,
        user_message: dict[str, Any],
        prompt: list[ChatCompletionMessageParam],
    ) -> AsyncIterator[str]:
        event_ids = iter(range(1, 1 << 62))
        try:
            yield _sse(next(event_ids), "user_message", user_message)
            parts: list[str] = []
            try:
                async for delta in llm.stream_openrouter_text_async(prompt):
                    parts.append(delta)
                    yield _sse(next(event_ids), "delta", {"text": delta})
            except Exception as exc:
                if parts:
                    db.add_message(conversation, "assistant", "".join(parts), character_id, "error")
                message = f"LLM call failed: {type(exc).__name__}"
                yield _sse(next(event_ids), "error", {"code": "llm_error", "message": message})
                return
            reply = db.add_message(conversation, "assistant", "".join(parts), character_id)
            yield _sse(next(event_ids), "reply", reply)
            yield _sse(next(event_ids), "done", {})
        finally:
            generating.discard(conversation)

    @app.post("/api/groups", status_code=201)
    async def create_group(body: NewGroup, user: User) -> dict[str, Any]:
        for character_id in body.character_ids:
            if db.get_character(user["id"], character_id) is None:
                raise ApiError(400, "invalid_request", f"unknown character {character_id}")
        max_speakers = min(body.max_speakers, len(body.character_ids))
        return db.create_group(
            user["id"], body.name, body.character_ids, body.strategy, max_speakers
        )

    @app.post("/api/groups/{group_id}/messages")
    async def group_message(group_id: str, body: ChatIn, user: User) -> dict[str, Any]:
        group = db.get_group(user["id"], group_id)
        if group is None:
            raise ApiError(404, "not_found", "no such group")
        conversation = f"g:{group_id}"
        if conversation in generating:
            raise ApiError(409, "generation_in_progress", "a turn is being generated")
        members = {cid: owned_character(user, cid) for cid in group["character_ids"]}
        history = db.recent_messages(conversation, HISTORY_MESSAGES)
        user_message = db.add_message(conversation, "user", body.content, None)
        generating.add(conversation)
        try:
            speakers, reason = await _choose_speakers(group, members, history, body.content)
            texts = await asyncio.gather(
                *(
                    llm.get_openrouter_completion_async(
                        _group_prompt(members[cid], members, history, body.content)
                    )
                    for cid in speakers
                )
            )
        except Exception as exc:
            raise ApiError(502, "llm_error", f"LLM call failed: {type(exc).__name__}") from exc
        finally:
            generating.discard(conversation)
        last_speaker[group_id] = speakers[-1]
        replies = [
            db.add_message(conversation, "assistant", text, cid)
            for cid, text in zip(speakers, texts, strict=True)
        ]
        return {
            "user_message": user_message,
            "speakers": speakers,
            "reason": reason,
            "replies": replies,
        }

    async def _choose_speakers(
        group: dict[str, Any],
        members: dict[str, dict[str, Any]],
        history: list[dict[str, Any]],
        content: str,
    ) -> tuple[list[str], str]:
        ids: list[str] = group["character_ids"]
        if group["strategy"] == "all":
            return ids, "all members reply"
        if group["strategy"] == "moderator":
            try:
                answer = await llm.get_openrouter_structured_json_async(
                    _moderator_prompt(members, history, content), Speakers
                )
                chosen = list(dict.fromkeys(c for c in answer.character_ids if c in members))
                if chosen:
                    return chosen[: group["max_speakers"]], answer.reason
            except Exception:  # the plan: on failure fall back (below)
                pass
        last = last_speaker.get(group["id"])
        start = ids.index(last) + 1 if last in ids else 0
        rotated = ids[start:] + ids[:start]
        return rotated[: group["max_speakers"]], "round robin"

    return app


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def _issue_token(db: Database, user_id: str) -> str:
    token = secrets.token_urlsafe(32)
    db.add_token(token, user_id)
    return token


def _sse(event_id: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def _persona(character: dict[str, Any]) -> str:
    profile = {k: v for k, v in character["profile"].items() if v}
    return (
        f"You are {character['name']}. Stay in character. "
        f"Character profile: {json.dumps(profile, ensure_ascii=False)}"
    )


def _chat_prompt(
    character: dict[str, Any], history: list[dict[str, Any]]
) -> list[ChatCompletionMessageParam]:
    prompt: list[ChatCompletionMessageParam] = [{"role": "system", "content": _persona(character)}]
    for message in history:
        if message["role"] == "user":
            prompt.append({"role": "user", "content": message["content"]})
        else:
            prompt.append({"role": "assistant", "content": message["content"]})
    return prompt


def _group_transcript(
    members: dict[str, dict[str, Any]], history: list[dict[str, Any]], content: str
) -> str:
    lines = [
        f"{members[m['character_id']]['name'] if m['character_id'] in members else 'User'}: "
        f"{m['content']}"
        for m in history
    ]
    lines.append(f"User: {content}")
    return "\n".join(lines)


def _group_prompt(
    speaker: dict[str, Any],
    members: dict[str, dict[str, Any]],
    history: list[dict[str, Any]],
    content: str,
) -> list[ChatCompletionMessageParam]:
    others = ", ".join(m["name"] for m in members.values() if m["id"] != speaker["id"])
    return [
        {"role": "system", "content": f"{_persona(speaker)} You are in a group with {others}."},
        {"role": "user", "content": _group_transcript(members, history, content)},
    ]


def _moderator_prompt(
    members: dict[str, dict[str, Any]], history: list[dict[str, Any]], content: str
) -> list[ChatCompletionMessageParam]:
    roster = "\n".join(f"{cid}: {m['name']}" for cid, m in members.items())
    return [
        {
            "role": "system",
            "content": "You moderate a group chat. Pick who should speak next, in order.\n"
            + roster,
        },
        {"role": "user", "content": _group_transcript(members, history, content)},
    ]


def _category_prompt(
    name: str, category: str, source_text: str | None
) -> list[ChatCompletionMessageParam]:
    source = f"\nSource material:\n{source_text}" if source_text else ""
    return [
        {"role": "system", "content": "You write role-play character profiles as JSON."},
        {"role": "user", "content": f"Character: {name}. Write the '{category}' part.{source}"},
    ]
