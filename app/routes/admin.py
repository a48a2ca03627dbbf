"""Administration routes: 401 without a token, 403 for a non-admin."""

from __future__ import annotations

from quart import Blueprint
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_request

from app.openapi import errors
from app.routes.common import admin_only, authenticated, services
from app.schemas import (
    AdminUserList,
    AdminUserPatch,
    LimiterOut,
    LimitsIn,
    LLMOut,
    StatsOut,
    TasksOut,
    UserOut,
)
from app.views import counts_view, parse_id, user_view, user_with_counts_view

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
@document_response(UserOut)
@errors(400, 404, 409, 413)
async def patch_user(user_id: str, data: AdminUserPatch) -> ResponseReturnValue:
    """Set `disabled` and/or `is_admin`; disabling revokes the user's tokens."""
    user = await services().admin.update_user(
        parse_id(user_id), disabled=data.disabled, is_admin=data.is_admin
    )
    return user_view(user)


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
    return services().admin.llm()


@bp.put("/llm/limits")
@authenticated
@admin_only
@validate_request(LimitsIn)
@document_response(LimiterOut)
@errors(400, 413)
async def put_limits(data: LimitsIn) -> ResponseReturnValue:
    """Resize the LLM concurrency limit now, without a restart."""
    return services().admin.resize(data.max_concurrency)


@bp.get("/tasks")
@authenticated
@admin_only
@document_response(TasksOut)
async def tasks() -> ResponseReturnValue:
    """Memory jobs by status with worker restarts, and running generations."""
    return await services().admin.tasks()
