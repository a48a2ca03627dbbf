"""Register, login, logout, me."""

from __future__ import annotations

from quart import Blueprint, g
from quart.typing import ResponseReturnValue
from quart_schema import document_response, validate_request

from app.openapi import errors, no_content_response
from app.routes.common import (
    authenticated,
    client_address,
    current_user,
    no_content,
    services,
)
from app.schemas import AuthOut, Credentials, LoginIn, UserOut
from app.views import user_view

bp = Blueprint("auth", __name__, url_prefix="/api")


@bp.post("/auth/register")
@validate_request(Credentials)
@document_response(AuthOut, 201)
@errors(400, 409, 413, 503)
async def register(data: Credentials) -> ResponseReturnValue:
    """Create an account and return a bearer token."""
    user, token = await services().auth.register(data.username, data.password)
    return {"user": user_view(user), "token": token}, 201


@bp.post("/auth/login")
@validate_request(LoginIn)
@document_response(AuthOut)
@errors(400, 401, 403, 413, 429, 503)
async def login(data: LoginIn) -> ResponseReturnValue:
    """Exchange a username and password for a bearer token (failed attempts are throttled)."""
    svc = services()
    user, token = await svc.login_throttle.attempt(
        data.username,
        client_address(),
        lambda: svc.auth.login(data.username, data.password),
    )
    return {"user": user_view(user), "token": token}


@bp.post("/auth/logout")
@authenticated
@no_content_response
async def logout() -> ResponseReturnValue:
    """Revoke the token used for this request; it stops working at once."""
    await services().auth.logout(g.token_hash)
    return no_content()


@bp.get("/me")
@authenticated
@document_response(UserOut)
async def me() -> ResponseReturnValue:
    """The authenticated user."""
    return user_view(current_user())
