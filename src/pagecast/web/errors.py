"""The only place errors become HTTP: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from pagecast.errors import PagecastError, field_path, in_words

__all__ = ["install"]


def _body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    # Drop the union-member name pydantic puts after `audience` (a discriminated union);
    # only there: a contact's `tags` is a field.
    if (
        len(parts) > 2
        and parts[0] == "audience"
        and parts[1] in ("all", "tags", "contacts", "filter", "segment")
    ):
        del parts[1]
    return field_path(parts)


def _explain(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "is not a known field; remove it (see /docs for the fields this endpoint takes)"
    return in_words(error)


def validation_response(errors: list[dict[str, Any]]) -> JSONResponse:
    json_error = next((e for e in errors if e["type"] == "json_invalid"), None)
    if json_error is not None:
        detail = (json_error.get("ctx") or {}).get("error", "malformed")
        return JSONResponse(
            _body(
                "invalid_json",
                f"The request body is not valid JSON ({detail}). Send a JSON object.",
            ),
            status_code=400,
        )
    fields = [_field(tuple(e["loc"])) or None for e in errors]
    explained = [_explain(e) for e in errors]
    listed = [{"field": f, "message": m} for f, m in zip(fields, explained, strict=True)]
    message = f"{fields[0]}: {explained[0]}" if fields[0] else explained[0]
    return JSONResponse(_body("invalid_input", message, fields[0], details=listed), status_code=422)


def install(app: FastAPI) -> None:
    @app.exception_handler(PagecastError)
    async def _pagecast(_: Request, exc: PagecastError) -> JSONResponse:
        retry = getattr(exc, "retry_after", None)  # TooManyRequests
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse(
            _body(exc.code, exc.message, exc.field, **exc.extra()),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_response([dict(e) for e in exc.errors()])

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
