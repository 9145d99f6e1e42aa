"""The call script: one JSON object per line, one simulated call per line.

``{"number": "+493012345678", "caller": "+491701234567", "keys": ["1", ["9", "4200#"]],
"hangup_after": null}`` — ``keys[i]`` is what the agent types at the i-th play_and_get_digits:
a string is typed again at every try, a list gives one entry per try; ``""`` is silence; a
missing entry is silence; entries beyond the criteria are ignored. ``hangup_after: k`` hangs up
once k criteria were answered (during the (k+1)-th play_and_get_digits, mid-prompt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.faults import Fault

DTMF_KEYS = frozenset("0123456789*#ABCD")
_E164 = re.compile(r"^\+?[0-9]{2,20}$")

KeyEntry = str | list[str]


def _check_keys(entry: str) -> str:
    bad = sorted(set(entry) - DTMF_KEYS)
    if bad:
        raise ValueError(f"{entry!r} holds non-DTMF characters {bad}; use 0-9 * # A-D")
    return entry


class CallSpec(BaseModel):
    """One scripted call (the agent leg that FreeSWITCH hands to the IVR after the bridge)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: str = Field(description="tracking number the caller dialled (ct_tracking_number)")
    caller: str = Field(default="+491701234567", description="the original caller's number")
    keys: list[KeyEntry] = Field(default_factory=list)
    hangup_after: int | None = Field(default=None, ge=0)
    faults: list[Fault] = Field(default_factory=list)
    agent: str = Field(default="1001", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    uuid: str | None = Field(default=None, description="channel uuid; random when absent")
    barge_in: bool = Field(default=False, description="type while the prompt still plays")

    @field_validator("number", "caller")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not _E164.match(value):
            raise ValueError(f"{value!r} is not a phone number like +493012345678")
        return value

    @field_validator("keys")
    @classmethod
    def _dtmf_only(cls, keys: list[KeyEntry]) -> list[KeyEntry]:
        for entry in keys:
            for item in [entry] if isinstance(entry, str) else entry:
                _check_keys(item)
        return keys

    def entry(self, criterion: int, attempt: int) -> str:
        """What the agent types at try ``attempt`` (0-based) of criterion ``criterion``."""
        if criterion >= len(self.keys):
            return ""
        entry = self.keys[criterion]
        if isinstance(entry, str):
            return entry
        return entry[attempt] if attempt < len(entry) else ""

    def has(self, fault: Fault) -> bool:
        return fault in self.faults


class ScriptError(ValueError):
    """A script line that is not a valid call; the message names file and line."""


def parse_script_lines(lines: Iterable[str], source: str = "<script>") -> list[CallSpec]:
    calls: list[CallSpec] = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScriptError(
                f"{source} line {lineno}: not JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise ScriptError(f"{source} line {lineno}: expected a JSON object, got {kind}")
        try:
            calls.append(CallSpec.model_validate(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ScriptError(f"{source} line {lineno}: {problems}") from None
    return calls


def load_script(path: str | Path) -> list[CallSpec]:
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        return parse_script_lines(fh, str(p))
