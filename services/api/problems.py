"""RFC 9457 problem details for every 4xx/5xx, naming the field that failed.

Handlers turn our own ``ApiError``s, FastAPI's request validation errors, Starlette's HTTP errors
(unknown route, wrong method) and anything unexpected into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:convtrack:problem:"

Location = Literal["body", "query", "path", "header", "file"]


class FieldError(BaseModel):
    field: str = Field(description="JSON path in the body (criteria[0].tries) or parameter name")
    location: Location = Field("body", alias="in")
    message: str

    model_config = {"populate_by_name": True}


class Problem(BaseModel):
    """RFC 9457 problem details; ``field``/``errors`` are extensions naming what failed."""

    type: str = Field("about:blank", examples=["urn:convtrack:problem:validation"])
    title: str = Field(examples=["Request is not valid"])
    status: int = Field(ge=400, le=599, examples=[422])
    detail: str | None = Field(None, examples=["criteria[0].tries: must be at most 9"])
    instance: str | None = Field(None, examples=["/v1/profiles"])
    field: str | None = Field(None, description="the first field that failed, if any")
    errors: list[FieldError] = Field(default_factory=list)


class ApiError(Exception):
    """An error with a status, a problem type slug and optionally the failing field."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        location: Location = "body",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.location: Location = location
        self.headers = headers or {}

    def problem(self, instance: str | None = None) -> Problem:
        errors = []
        if self.field is not None:
            errors.append(FieldError(field=self.field, location=self.location, message=self.detail))
        return Problem(
            type=TYPE_PREFIX + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            field=self.field,
            errors=errors,
        )


class Unauthorized(ApiError):
    status, slug, title = 401, "unauthorized", "Missing or unknown API key"

    def __init__(self, detail: str) -> None:
        super().__init__(
            detail, field="Authorization", location="header", headers={"WWW-Authenticate": "Bearer"}
        )


class Forbidden(ApiError):
    status, slug, title = 403, "forbidden", "Not allowed with this key"


class NotFound(ApiError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ApiError):
    status, slug, title = 409, "conflict", "Conflict with the current state"


class PreconditionFailed(ApiError):
    status, slug, title = 412, "precondition-failed", "Version conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="If-Match", location="header")


class Unprocessable(ApiError):
    status, slug, title = 422, "validation", "Request is not valid"


class Unavailable(ApiError):
    status, slug, title = 503, "unavailable", "A backing service is unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


def field_path(loc: Sequence[int | str]) -> str:
    """``("criteria", 0, "tries")`` -> ``criteria[0].tries``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# Tags of tagged unions (see models.ProfileCreate) that pydantic puts into error locations; they
# name a schema branch, not a field, so they are dropped from what the client sees.
UNION_TAGS = {"profile", "from_template"}
TAGGED_FIELDS = {"input": {"code", "number"}}


def errors_from_pydantic(
    raw: Sequence[Any], default_location: Location = "body"
) -> list[FieldError]:
    out: list[FieldError] = []
    for err in raw:
        loc = list(err.get("loc", ()))
        location: Location = default_location
        if loc and loc[0] in ("body", "query", "path", "header"):
            location = loc.pop(0)
        if location == "body" and loc and loc[0] in UNION_TAGS:
            loc.pop(0)
        # Pydantic puts union branches into locations: type names of plain unions ("CodeInput",
        # "function-after[...]") and the tag of a tagged one (criterion input "code"/"number").
        # They name a schema branch, not a field, so the client does not see them.
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p[:1].isupper()))]
        loc = [
            p
            for n, p in enumerate(loc)
            if not (n and loc[n - 1] in TAGGED_FIELDS and p in TAGGED_FIELDS[str(loc[n - 1])])
        ]
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        out.append(FieldError(field=field_path(loc) or location, location=location, message=msg))
    return out


def validation_problem(errors: list[FieldError], instance: str | None) -> Problem:
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return Problem(
        type=TYPE_PREFIX + "validation",
        title="Request is not valid",
        status=422,
        detail=detail,
        instance=instance,
        field=errors[0].field if errors else None,
        errors=errors,
    )


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem_response(exc.problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = errors_from_pydantic(exc.errors())
        return problem_response(validation_problem(errors, request.url.path))

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        errors = errors_from_pydantic(exc.errors())
        return problem_response(validation_problem(errors, request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        if status == 400:
            # FastAPI's "error parsing the body" (bytes that are not JSON text): one more way
            # of an invalid body, answered like every other one.
            error = FieldError(field="body", message=str(exc.detail or "body is not valid JSON"))
            return problem_response(validation_problem([error], request.url.path))
        problem = Problem(
            title=HTTPStatus(status).phrase,
            status=status,
            detail=str(exc.detail) if exc.detail else None,
            instance=request.url.path,
        )
        return problem_response(problem, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        problem = Problem(
            type=TYPE_PREFIX + "internal",
            title="Internal server error",
            status=500,
            detail="the server failed; the error was logged",
            instance=request.url.path,
        )
        return problem_response(problem)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given error statuses (problem+json)."""
    descriptions = {
        400: "Bad request",
        401: "Missing or unknown API key",
        403: "The key may not do this (viewer keys are read-only)",
        404: "Unknown id, or an object of another tenant",
        409: "Conflicts with current state (in use, already held)",
        412: "If-Match names a stale version",
        415: "The body is neither multipart/form-data nor JSON",
        422: "A field failed validation; `field` names it",
        503: "NATS or ClickHouse is unavailable; retry",
    }
    return {code: {"model": Problem, "description": descriptions[code]} for code in codes}
