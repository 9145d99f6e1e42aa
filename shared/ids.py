"""Identifier rules shared by every boundary: tenants, object ids, E.164 numbers, DTMF digits."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
OBJECT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
DIGITS_RE = re.compile(r"^[0-9*#]*$")
CRITERION_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

# Namespace for answer ids: uuid5(namespace, f"{call_uuid}/{criterion_key}").
ANSWER_NAMESPACE = uuid.UUID("6f1c1b7e-2a40-4c5e-9d7a-0c0a7e1b5c11")


def _check(regex: re.Pattern[str], what: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{what} {value!r} is not valid (must match {regex.pattern})")
        return value

    return AfterValidator(validate)


TenantId = Annotated[str, _check(TENANT_RE, "tenant id")]
ObjectId = Annotated[str, _check(OBJECT_ID_RE, "id")]
E164 = Annotated[str, _check(E164_RE, "E.164 number")]
Digits = Annotated[str, StringConstraints(max_length=64), _check(DIGITS_RE, "DTMF digit string")]
CriterionKey = Annotated[str, _check(CRITERION_KEY_RE, "criterion key")]


def is_e164(value: str) -> bool:
    return bool(E164_RE.fullmatch(value))


def normalize_number(raw: str) -> str:
    """Best effort E.164 from what FreeSWITCH hands over ("4930..." or "+4930...")."""
    raw = raw.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif raw and raw[0].isdigit():
        raw = "+" + raw
    return raw


def answer_id(call_uuid: str, criterion_key: str) -> str:
    """Deterministic: a retried publish or a re-run of the same call keeps the same id."""
    return str(uuid.uuid5(ANSWER_NAMESPACE, f"{call_uuid}/{criterion_key}"))


def survey_id(call_uuid: str) -> str:
    # '#' cannot occur in a criterion key, so a survey id never equals an answer id (both are
    # Nats-Msg-Ids in one stream, where a collision would silently drop a message).
    return str(uuid.uuid5(ANSWER_NAMESPACE, f"{call_uuid}#survey"))


def new_id() -> str:
    return uuid.uuid4().hex[:20]
