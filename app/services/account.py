"""A user's own account: deleting it with everything it owns, and its settings."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.errors import Conflict
from app.services.auth import AuthService
from app.services.models import chosen_model
from storage import Database, LastAdmin, user_settings, users
from storage.user_settings import UNCHANGED, UserSettings


class AccountService:
    """`DELETE /api/me` and `/api/me/settings` (the password change is `AuthService`'s)."""

    def __init__(self, db: Database, auth: AuthService, *, models: Collection[str]) -> None:
        self._db = db
        self._auth = auth
        self._models = models

    async def delete(self, user_id: int, password: str) -> None:
        """Check the password, then delete the user and all they own in one transaction.

        401 ``invalid_credentials`` for a wrong password; 409 for the last enabled admin."""
        await self._auth.check_password(user_id, password)
        try:
            await self._db.write(users.delete_user, user_id)
        except LastAdmin:
            raise Conflict("the last enabled admin cannot delete their account") from None
        self._auth.cache.forget_user(user_id)

    async def settings(self, user_id: int) -> UserSettings:
        return await self._db.read(user_settings.get_settings, user_id)

    async def update_settings(self, user_id: int, changes: dict[str, Any]) -> UserSettings:
        """Apply the fields present in ``changes`` (``language``, ``default_model``)."""
        model = changes.get("default_model", UNCHANGED)
        if model is not UNCHANGED:
            model = chosen_model(model, self._models, field="default_model")
        return await self._db.write(
            user_settings.set_settings,
            user_id,
            language=changes.get("language", UNCHANGED),
            default_model=model,
        )
