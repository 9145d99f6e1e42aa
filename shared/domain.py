"""Domain models of design §1: code maps, criteria, profiles, number pools, assignments.

These are the shapes stored in NATS KV (by the API) and read by the IVR. Validation here rejects
what cannot work on a phone keypad, so neither the API nor the IVR has to repeat it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.ids import E164, CriterionKey, ObjectId, TenantId

Aggregation = Literal[
    "count", "sum", "min", "max", "avg", "error_rate", "distribution", "success_rate"
]
AnswerStatus = Literal["ok", "invalid", "timeout", "hangup"]
SurveyStatus = Literal["complete", "incomplete", "no_profile"]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", examples=["de"])]

MAX_CODE_DIGITS = 16
MAX_NUMBER_DIGITS = 18  # keeps an order value inside a Float64's exact integer range


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CodeMapEntry(StrictModel):
    code: Annotated[str, Field(pattern=r"^[0-9*]{1,16}$", description="DTMF digits, no #")]
    label: Annotated[str, Field(min_length=1, max_length=64)]
    value: float | None = Field(None, description="numeric value summed/maximised, optional")
    success: bool = Field(False, description="whether this answer counts as a success")


class CodeMap(StrictModel):
    """Table DTMF code -> label; reusable between profiles."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    entries: Annotated[list[CodeMapEntry], Field(min_length=1, max_length=100)]

    # Field (not model) validators, so that an API error names the field that failed.
    @field_validator("entries")
    @classmethod
    def _distinct_codes(cls, entries: list[CodeMapEntry]) -> list[CodeMapEntry]:
        codes = [e.code for e in entries]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"codes must be distinct; repeated: {', '.join(dupes)}")
        return entries

    def entry_for(self, code: str) -> CodeMapEntry | None:
        return next((e for e in self.entries if e.code == code), None)

    @property
    def min_len(self) -> int:
        return min(len(e.code) for e in self.entries)

    @property
    def max_len(self) -> int:
        return max(len(e.code) for e in self.entries)


class TextPrompt(StrictModel):
    text: Annotated[str, Field(min_length=1, max_length=500)]
    language: Language = "de"
    prompt_id: ObjectId | None = Field(
        None, description="set by the API once the text was rendered to audio"
    )


class UploadedPrompt(StrictModel):
    prompt_id: ObjectId


PromptRef = TextPrompt | UploadedPrompt


class CodeInput(StrictModel):
    type: Literal["code"] = "code"
    code_map_id: ObjectId | None = None
    code_map: CodeMap | None = None
    terminators: Annotated[str, Field(pattern=r"^#?$")] = "#"

    @model_validator(mode="after")
    def _one_source(self) -> CodeInput:
        if (self.code_map_id is None) == (self.code_map is None):
            raise ValueError("give exactly one of code_map_id or code_map")
        return self


class NumberInput(StrictModel):
    type: Literal["number"] = "number"
    min_digits: int = Field(1, ge=1, le=MAX_NUMBER_DIGITS)
    max_digits: int = Field(9, ge=1, le=MAX_NUMBER_DIGITS)
    terminator: Annotated[str, Field(pattern=r"^[#*]$")] = "#"

    @field_validator("max_digits")
    @classmethod
    def _limits(cls, max_digits: int, info: ValidationInfo) -> int:
        if max_digits < info.data.get("min_digits", 1):
            raise ValueError("max_digits must be >= min_digits")
        return max_digits


CriterionInput = Annotated[CodeInput | NumberInput, Field(discriminator="type")]


class Criterion(StrictModel):
    key: CriterionKey
    label: Annotated[str, Field(min_length=1, max_length=100)]
    prompt: PromptRef | None = None
    input: CriterionInput
    tries: int = Field(3, ge=1, le=9)
    timeout_ms: int = Field(5000, ge=1000, le=60_000)
    aggregations: list[Aggregation] = Field(default_factory=lambda: list[Aggregation](["count"]))

    @field_validator("aggregations")
    @classmethod
    def _aggregations_fit_input(
        cls, aggregations: list[Aggregation], info: ValidationInfo
    ) -> list[Aggregation]:
        numeric = {"sum", "min", "max", "avg"}
        if len(set(aggregations)) != len(aggregations):
            raise ValueError("aggregations must not repeat")
        given = info.data.get("input")  # absent when the input itself failed validation
        if isinstance(given, CodeInput) and given.code_map is not None:
            cm = given.code_map
            if any(a in numeric for a in aggregations) and all(e.value is None for e in cm.entries):
                raise ValueError("sum/min/max/avg need code map entries with a value")
        if isinstance(given, NumberInput) and (
            "distribution" in aggregations or "success_rate" in aggregations
        ):
            raise ValueError("distribution and success_rate need a code map input")
        return aggregations


class ProfilePrompts(StrictModel):
    welcome: PromptRef | None = None
    invalid: PromptRef | None = None
    goodbye: PromptRef | None = None


class Profile(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    language: Language = "de"
    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=20)]
    prompts: ProfilePrompts = Field(default_factory=ProfilePrompts)

    @field_validator("criteria")
    @classmethod
    def _distinct_keys(cls, criteria: list[Criterion]) -> list[Criterion]:
        keys = [c.key for c in criteria]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"criterion keys must be distinct; repeated: {', '.join(dupes)}")
        return criteria


class NumberPool(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    numbers: Annotated[list[E164], Field(max_length=10_000)] = Field(default_factory=list)
    profile_id: ObjectId | None = None

    @field_validator("numbers")
    @classmethod
    def _distinct_numbers(cls, numbers: list[str]) -> list[str]:
        if len(set(numbers)) != len(numbers):
            raise ValueError("a number may appear only once in a pool")
        return numbers


class NumberAssignment(StrictModel):
    """A tracking number's own assignment; wins over its pool's."""

    profile_id: ObjectId


class Stored(BaseModel):
    """Metadata every stored object carries next to its body."""

    id: ObjectId
    tenant_id: TenantId
    created_at: datetime
    updated_at: datetime


class StoredCodeMap(CodeMap, Stored):
    pass


class StoredProfile(Profile, Stored):
    pass


class StoredPool(NumberPool, Stored):
    pass


class StoredAssignment(NumberAssignment):
    tenant_id: TenantId
    number: E164
    updated_at: datetime
