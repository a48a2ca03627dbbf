"""`create_app(settings)`: the Quart-Trio app, its routes, error handlers and lifecycle."""

from __future__ import annotations

import trio
from argon2 import PasswordHasher
from quart_schema import Info, QuartSchema
from quart_trio import QuartTrio

from app.body_limits import limited_request_class
from app.http_errors import install_error_handlers
from app.openapi import SECURITY_SCHEMES, FastNPCOpenAPI
from app.routes import (
    account,
    admin,
    auth,
    characters,
    chat,
    docs,
    groups,
    health,
    lorebooks,
    media,
    persona,
    sources,
    tree,
    web,
)
from app.routes import memories as memory_routes
from app.services.container import Services, run_services
from app.settings import Settings


def create_app(
    settings: Settings | None = None, *, hasher: PasswordHasher | None = None
) -> QuartTrio:
    """Build the app. Its services start in `before_serving` and stop in `after_serving`.

    `app.extensions["stop"]` is the event that begins a graceful shutdown: streams end with an
    `error` event `shutting_down` and partial replies are saved. The CLI sets it on SIGTERM
    before the server drains; `after_serving` sets it otherwise.
    """
    settings = settings or Settings()
    app = QuartTrio("fastnpc")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.request_class = limited_request_class(
        app, body_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes
    )
    app.config["PROPAGATE_EXCEPTIONS"] = False
    QuartSchema(
        app,
        info=Info(title="FastNPC", version="0.1.0"),
        security_schemes=SECURITY_SCHEMES,
        openapi_provider_class=FastNPCOpenAPI,
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,  # app/routes/docs.py serves /docs from local files
    )
    install_error_handlers(app)
    for module in (
        health,
        auth,
        account,
        characters,
        chat,
        groups,
        tree,
        admin,
        docs,
        persona,
        media,
        lorebooks,
        sources,
        web,
    ):
        app.register_blueprint(module.bp)
    app.register_blueprint(memory_routes.bp)

    stop = trio.Event()
    app.extensions["stop"] = stop
    app.extensions["settings"] = settings

    @app.before_serving
    async def start_services() -> None:
        services: Services = await app.nursery.start(
            lambda task_status: run_services(
                settings, stop=stop, hasher=hasher, task_status=task_status
            )
        )
        app.extensions["services"] = services

    @app.after_serving
    async def stop_services() -> None:
        stop.set()

    return app
