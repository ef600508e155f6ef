"""Dependencies of the routes, as Annotated aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from app.settings import Settings
from worker.core.editor import Editor
from worker.core.errors import ServiceError


class Unauthorized(ServiceError):
    status_code = 401


def get_editor(request: Request) -> Editor:
    return request.app.state.editor  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


EditorDep = Annotated[Editor, Depends(get_editor)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_api_key_header)]) -> None:
    """When FACEEDIT_API_KEY is set, every protected route needs it in X-API-Key."""
    if settings.api_key and not (key and secrets.compare_digest(key.encode(), settings.api_key.encode())):
        raise Unauthorized("missing or wrong X-API-Key")
