"""Request dependencies: the caller's tenant, write permission, stores and version headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.auth import KeyRing, Principal
from services.api.ch_pool import ClickHousePool
from services.api.problems import Forbidden, PreconditionFailed, Unauthorized
from services.api.stores import Stores
from shared.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    keys: KeyRing
    clickhouse: ClickHousePool
    stores: Stores | None = None  # set once NATS is connected (lifespan)


def state(request: Request) -> ApiState:
    return request.app.state.api


def stores(request: Request) -> Stores:
    s = state(request).stores
    assert s is not None, "stores are opened in the lifespan"
    return s


_bearer = HTTPBearer(auto_error=False, description="an API key of your tenant")


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send `Authorization: Bearer <API key>`")
    found = state(request).keys.lookup(credentials.credentials)
    if found is None:
        raise Unauthorized("the API key is not known")
    return found


def writer(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.can_write:
        raise Forbidden("this is a read-only (viewer) key")
    return who


Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(writer)]
StoresDep = Annotated[Stores, Depends(stores)]

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='the ETag you read, e.g. "12"; a stale one fails with 412',
        ),
    ] = None,
) -> int | None:
    """The expected revision, or None when the header is absent or ``*``."""
    if value is None or value.strip() in ("", "*"):
        return None
    match = _ETAG.match(value)
    if not match:
        raise PreconditionFailed(f"If-Match {value!r} is not an ETag this API issued")
    return int(match.group(1))


IfMatch = Annotated[int | None, Depends(if_match)]


def etag(revision: int) -> str:
    return f'"{revision}"'


def set_etag(response: Response, revision: int) -> None:
    response.headers["ETag"] = etag(revision)


def check_if_match(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"the object is at version {current}, not {expected}; read it again and retry"
        )
