"""The cloud's refusals: :class:`APIError` (an HTTP status, a short code and a sentence), raised by the HTTP
routes and the clip checks alike, and sent as an ``ErrorOut`` body over HTTP or on the MQTT error topic."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

CAMERA_RULE = "1-64 characters: letters, digits, _ . : - (starting with a letter or digit)"


class APIError(Exception):
    """An answer other than 2xx: HTTP ``status``, a short ``code`` and a sentence for a person."""

    def __init__(self, status: int, code: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The :class:`tinyact.wire.ErrorOut` body: ``{"error", "detail"}`` and ``errors`` when there are any."""
        out: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def describe_validation_error(error: ValidationError, root: str = "body") -> APIError:
    """A pydantic error as a 422 whose ``detail`` names the first failing field in plain words."""
    items = []
    for item in error.errors(include_url=False, include_input=False)[:20]:
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch" and item["loc"] and item["loc"][-1] == "camera_id":
            message = f"camera_id must be {CAMERA_RULE}"
        elif item["type"] == "json_invalid":
            message = f"not valid JSON ({item.get('ctx', {}).get('error', message)})"
        items.append({"loc": [root, *item["loc"]], "msg": message, "type": item["type"]})
    # For a union (latent: object or list) name the branch that matched the input's type, e.g. "List should
    # have at most 16384 items", not "Input should be a valid dictionary" of the other branch.
    items.sort(key=lambda item: item["type"] in {"model_type", "list_type", "dict_type"})
    first = items[0] if items else {"loc": [root], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"][1:] if p not in {"EncodedLatent", "list[float]"}) or root
    more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return APIError(422, "invalid_request", f"{where}: {first['msg']}{more}", errors=items)


def database_unavailable() -> APIError:
    """503 for a failed database read or write: the client retries later."""
    return APIError(503, "database_unavailable", "the database is unavailable; retry later", headers={"Retry-After": "5"})
