"""Report response bodies (design §8)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.reports.plan import Interval
from shared.domain import Aggregation, AnswerStatus, SurveyStatus

GroupBy = Literal["none", "number", "pool"]
ExportFormat = Literal["xlsx", "csv"]


class DistributionEntry(BaseModel):
    code: str
    label: str
    count: int
    share: float | None = Field(description="count / the criterion's count; null when count is 0")


class CriterionFigures(BaseModel):
    """Figures of one criterion; those not among its ``aggregations`` are null."""

    key: str
    label: str
    aggregations: list[Aggregation]
    count: int = Field(description="every answer of the criterion, whatever its status")
    error_rate: float | None = Field(None, description="answers not ok / count")
    success_rate: float | None = Field(None, description="answers labelled success / count")
    sum: float | None = Field(None, description="over ok answers with a value (0 when none)")
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    distribution: list[DistributionEntry] | None = None


class SummaryRow(BaseModel):
    bucket: datetime = Field(description="start of the interval, in the report's time zone")
    tracking_number: str | None = Field(None, description="set when group_by=number")
    pool_id: str | None = Field(None, description="set when group_by=pool ('' = no pool)")
    criteria: list[CriterionFigures]


class SummaryReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    profile_id: str
    profile_version: int = Field(description="the profile version whose criteria label the report")
    from_: datetime = Field(alias="from")
    to: datetime
    tz: str
    interval: Interval
    group_by: GroupBy
    criteria: list[CriterionFigures] = Field(description="totals over the whole range")
    rows: list[SummaryRow] = Field(description="per bucket (and group); empty buckets are left out")


class CallAnswer(BaseModel):
    digits: str
    code: str
    label: str
    value: float | None
    status: AnswerStatus


class CallRow(BaseModel):
    survey_id: str
    call_uuid: str
    time: datetime = Field(description="survey start, in the report's time zone")
    ended_at: datetime
    tracking_number: str
    pool_id: str
    caller: str
    agent: str
    status: SurveyStatus
    profile_version: int
    answers: dict[str, CallAnswer] = Field(description="by criterion key")


class CriterionHeader(BaseModel):
    key: str
    label: str


class CallPage(BaseModel):
    criteria: list[CriterionHeader]
    items: list[CallRow] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")
