"""The caller's own account: password, deletion, settings, usage, feedback."""

from __future__ import annotations

from quart import Blueprint, g
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.errors import InvalidRequest
from app.openapi import errors, no_content_response
from app.routes.common import authenticated, current_user, no_content, services
from app.schemas import (
    AccountDeleteIn,
    FeedbackIn,
    FeedbackOut,
    PasswordChangeIn,
    SettingsIn,
    SettingsOut,
    UsageOut,
    UsageQuery,
)
from app.views import feedback_view, parse_id, quota_view, settings_view, usage_day_view

bp = Blueprint("account", __name__, url_prefix="/api")


@bp.post("/me/password")
@authenticated
@validate_request(PasswordChangeIn)
@no_content_response
@errors(400, 413)
async def change_password(data: PasswordChangeIn) -> ResponseReturnValue:
    """Change the password (204); every other token of the user stops working at once.
    A wrong `current_password` is 401 `invalid_credentials`."""
    await services().auth.change_password(
        current_user().id, data.current_password, data.new_password, keep_token_hash=g.token_hash
    )
    return no_content()


@bp.delete("/me")
@authenticated
@validate_request(AccountDeleteIn)
@no_content_response
@errors(400, 409, 413)
async def delete_account(data: AccountDeleteIn) -> ResponseReturnValue:
    """Delete the account and everything it owns (204): characters, conversations, messages,
    memories, groups, persona, settings, usage, feedback. A wrong `password` is 401
    `invalid_credentials`; the last enabled admin cannot (409)."""
    await services().account.delete(current_user().id, data.password)
    return no_content()


@bp.get("/me/settings")
@authenticated
@document_response(SettingsOut)
async def get_settings() -> ResponseReturnValue:
    """`language` and `default_model` (null: the server's default)."""
    return settings_view(await services().account.settings(current_user().id))


@bp.patch("/me/settings")
@authenticated
@validate_request(SettingsIn)
@document_response(SettingsOut)
@errors(400, 413)
async def patch_settings(data: SettingsIn) -> ResponseReturnValue:
    """Set `language` (`zh`|`en`: the server's own prompt texts when a character has none)
    and/or `default_model` (when a character has none; an id `FASTNPC_MODELS` allows)."""
    changes = data.model_dump(include=data.model_fields_set)
    return settings_view(await services().account.update_settings(current_user().id, changes))


@bp.get("/me/usage")
@authenticated
@validate_querystring(UsageQuery)
@document_response(UsageOut)
@errors(400)
async def usage(query_args: UsageQuery) -> ResponseReturnValue:
    """LLM calls, tokens and cost per day (UTC) and model over the last `days` days (default
    30, today included), newest day first; `quota`: the monthly token quota and the tokens
    used this month."""
    report = await services().usage.report(current_user().id, query_args.days)
    return {"days": [usage_day_view(r) for r in report.days], "quota": quota_view(report.quota)}


@bp.post("/feedback")
@authenticated
@validate_request(FeedbackIn)
@document_response(FeedbackOut, 201)
@errors(400, 413)
async def post_feedback(data: FeedbackIn) -> ResponseReturnValue:
    """Rate a reply (`rating` -1 or 1) and/or comment (≤ 2,000 characters); `message_id`
    optional, a message of one of your conversations (else 400)."""
    if data.rating is None and data.comment is None:
        raise InvalidRequest(
            "give a `rating` or a `comment`",
            details=[{"loc": ["rating"], "msg": "rating or comment required", "type": "missing"}],
        )
    message_id = None if data.message_id is None else parse_id(data.message_id)
    item = await services().feedback.add(
        current_user().id, message_id=message_id, rating=data.rating, comment=data.comment
    )
    return feedback_view(item), 201
