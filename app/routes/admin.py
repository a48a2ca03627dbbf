"""Administration routes: 401 without a token, 403 for a non-admin."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_querystring, validate_request

from app.errors import InvalidRequest
from app.openapi import errors
from app.routes.common import admin_only, authenticated, services
from app.schemas import (
    AdminFeedbackList,
    AdminUsageOut,
    AdminUsageQuery,
    AdminUserList,
    AdminUserPatch,
    AdminUserPatchOut,
    FeedbackQuery,
    LimiterOut,
    LimitsIn,
    LLMOut,
    PromptSnapshotOut,
    StatsOut,
    TasksOut,
)
from app.views import (
    admin_feedback_view,
    counts_view,
    parse_id,
    prompt_snapshot_view,
    quota_view,
    usage_day_view,
    user_view,
    user_with_counts_view,
)
from storage.user_settings import UNCHANGED

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


@bp.get("/users")
@authenticated
@admin_only
@document_response(AdminUserList)
async def list_users() -> ResponseReturnValue:
    """Every user with `characters` and `messages` counts."""
    items = await services().admin.users()
    return {"items": [user_with_counts_view(u) for u in items]}


@bp.patch("/users/<user_id>")
@authenticated
@admin_only
@validate_request(AdminUserPatch)
@document_response(AdminUserPatchOut)
@errors(400, 404, 409, 413)
async def patch_user(user_id: str, data: AdminUserPatch) -> ResponseReturnValue:
    """Set `disabled`, `is_admin` and/or `monthly_token_quota` (tokens per calendar month,
    UTC; `null`: no limit); disabling revokes the user's tokens."""
    quota = (
        data.monthly_token_quota if "monthly_token_quota" in data.model_fields_set else UNCHANGED
    )
    user, monthly_token_quota = await services().admin.update_user(
        parse_id(user_id),
        disabled=data.disabled,
        is_admin=data.is_admin,
        monthly_token_quota=quota,
    )
    return {**user_view(user), "monthly_token_quota": monthly_token_quota}


@bp.get("/usage")
@authenticated
@admin_only
@validate_querystring(AdminUsageQuery)
@document_response(AdminUsageOut)
@errors(400)
async def usage(query_args: AdminUsageQuery) -> ResponseReturnValue:
    """LLM usage per user, day and model over the last `days` days (default 30), newest day
    first; with `user_id`, that user's only and their quota (an unknown user has none)."""
    usage_service = services().usage
    if query_args.user_id is None:
        rows = await usage_service.all_users(query_args.days)
        return {"days": [usage_day_view(r, with_user=True) for r in rows], "quota": None}
    report = await usage_service.report(int(query_args.user_id), query_args.days)
    return {
        "days": [usage_day_view(r, with_user=True) for r in report.days],
        "quota": quota_view(report.quota),
    }


@bp.get("/feedback")
@authenticated
@admin_only
@validate_querystring(FeedbackQuery)
@document_response(AdminFeedbackList)
@errors(400)
async def feedback(query_args: FeedbackQuery) -> ResponseReturnValue:
    """Feedback, newest first, with its user and message; `before` is a feedback id
    (exclusive), `next_before` the oldest in the page when older ones exist."""
    limit = query_args.limit
    before = None if query_args.before is None else parse_id(query_args.before)
    if query_args.before is not None and before is None:
        raise InvalidRequest("`before` is not a feedback id")
    items = await services().feedback.list(limit=limit + 1, before=before)
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": [admin_feedback_view(f) for f in items],
        "next_before": str(items[-1].id) if more else None,
    }


@bp.get("/messages/<message_id>/prompt")
@authenticated
@admin_only
@document_response(PromptSnapshotOut)
@errors(404)
async def message_prompt(message_id: str) -> ResponseReturnValue:
    """The exact prompt sent for that assistant message, while it is kept
    (`FASTNPC_PROMPT_SNAPSHOT_DAYS`); 404 afterwards, or when none was recorded."""
    snapshot = await services().snapshots.get(parse_id(message_id))
    return prompt_snapshot_view(snapshot)


@bp.get("/stats")
@authenticated
@admin_only
@document_response(StatsOut)
async def stats() -> ResponseReturnValue:
    """Counts of users, characters, messages, groups, memories."""
    return counts_view(await services().admin.stats())


@bp.get("/llm")
@authenticated
@admin_only
@document_response(LLMOut)
async def llm_state() -> ResponseReturnValue:
    """The LLM limiter and per-model metrics."""
    return await services().admin.llm()


@bp.put("/llm/limits")
@authenticated
@admin_only
@validate_request(LimitsIn)
@document_response(LimiterOut)
@errors(400, 413)
async def put_limits(data: LimitsIn) -> ResponseReturnValue:
    """Resize the LLM concurrency limit now, without a restart."""
    return await services().admin.resize(data.max_concurrency)


@bp.get("/tasks")
@authenticated
@admin_only
@document_response(TasksOut)
async def tasks() -> ResponseReturnValue:
    """Memory jobs by status with worker restarts, and running generations."""
    return await services().admin.tasks()
