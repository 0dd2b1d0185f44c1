"""What every router shares: the service of the app, the documented error answers, and reading a JSON body
after authentication."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tinyact.cloud.errors import describe_validation_error
from tinyact.cloud.service import CloudService
from tinyact.wire import ErrorOut

MAX_CURSOR = 2**63 - 1  # ids are BIGINT: a larger cursor cannot exist (and overflows the database driver)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 409, 413, 415, 422, 429, 503)}
"""The error answers every API route documents (body: :class:`tinyact.wire.ErrorOut`)."""

_Body = TypeVar("_Body", bound=BaseModel)


def service_of(request: Request) -> CloudService:
    """The :class:`CloudService` of the app serving ``request``."""
    service: CloudService = request.app.state.service
    return service


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI of a JSON body that a route reads itself (after authentication); the app adds ``model``'s schema
    to the components (:meth:`tinyact.cloud.app.CloudAPI.openapi`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def json_body(request: Request, model: type[_Body]) -> _Body:
    """The request body as ``model``; routes call this after their auth dependency, so an unauthenticated
    request is refused before its body is read.

    Raises:
        APIError: 422 naming the first invalid field.
    """
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise describe_validation_error(error) from None
