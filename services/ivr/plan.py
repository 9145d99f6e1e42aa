"""A resolved profile as a ready-to-run survey plan: prompts as file strings, one
play_and_get_digits argument set and one input rule per criterion.

Plans are immutable and cached per (tenant, profile, profile revision, code map revisions), so a
call pays for building one only after an edit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.domain import CodeInput, Criterion, NumberInput, StoredCodeMap, StoredProfile

from .pagd import CodeRule, InputRule, NumberRule, PagdArgs
from .prompts import DEFAULT_INVALID_FILE, PromptResolver

# Channel variable play_and_get_digits stores the digits in; one per criterion keeps a late
# EXECUTE_COMPLETE of one criterion from ever being read as another's.
VARIABLE_PREFIX = "ct_in_"


class PlanError(ValueError):
    """A profile that cannot run, e.g. its code map is missing from the index."""


@dataclass(frozen=True, slots=True)
class CriterionPlan:
    index: int
    key: str
    label: str
    pagd: PagdArgs
    rule: InputRule

    @property
    def variable(self) -> str:
        return self.pagd.variable


@dataclass(frozen=True, slots=True)
class SurveyPlan:
    tenant_id: str
    profile_id: str
    profile_version: int
    welcome: str | None
    goodbye: str | None
    criteria: tuple[CriterionPlan, ...]


def _rule(criterion: Criterion, code_maps: dict[str, StoredCodeMap]) -> InputRule:
    inp = criterion.input
    if isinstance(inp, NumberInput):
        return NumberRule(inp.min_digits, inp.max_digits)
    code_map = inp.code_map if inp.code_map is not None else code_maps.get(inp.code_map_id or "")
    if code_map is None:
        raise PlanError(f"criterion {criterion.key!r}: code map {inp.code_map_id!r} not found")
    return CodeRule({e.code: e for e in code_map.entries})


def _terminators(criterion: Criterion) -> str:
    inp = criterion.input
    if isinstance(inp, CodeInput):
        # An empty terminator list means '#' to FreeSWITCH anyway; codes never contain '#'.
        return inp.terminators or "#"
    return inp.terminator


def build_plan(
    profile: StoredProfile,
    revision: int,
    code_maps: dict[str, StoredCodeMap],
    prompts: PromptResolver,
) -> SurveyPlan:
    tenant = profile.tenant_id
    invalid = prompts.file_for(tenant, profile.prompts.invalid) or DEFAULT_INVALID_FILE
    criteria = []
    for i, c in enumerate(profile.criteria):
        rule = _rule(c, code_maps)
        if isinstance(rule, CodeRule):
            min_d, max_d = rule.min_len, rule.max_len
        else:
            min_d, max_d = rule.min_digits, rule.max_digits
        args = PagdArgs(
            min_digits=min_d,
            max_digits=max_d,
            tries=c.tries,
            timeout_ms=c.timeout_ms,
            terminators=_terminators(c),
            prompt_file=prompts.file_for(tenant, c.prompt, fallback_text=c.label) or "",
            invalid_file=invalid,
            variable=VARIABLE_PREFIX + c.key,
            regex=rule.regex(),
            digit_timeout_ms=c.timeout_ms,
        )
        criteria.append(CriterionPlan(i, c.key, c.label, args, rule))
    return SurveyPlan(
        tenant_id=tenant,
        profile_id=profile.id,
        profile_version=revision,
        welcome=prompts.file_for(tenant, profile.prompts.welcome),
        goodbye=prompts.file_for(tenant, profile.prompts.goodbye),
        criteria=tuple(criteria),
    )


class PlanCache:
    """Plans by (tenant, profile id, revision, code map revisions). Bounded; thread-safe."""

    def __init__(self, prompts: PromptResolver, max_size: int = 2048) -> None:
        self._prompts = prompts
        self._max = max_size
        self._plans: dict[tuple[object, ...], SurveyPlan] = {}
        self._lock = threading.Lock()

    def get(
        self,
        profile: StoredProfile,
        revision: int,
        code_maps: dict[str, StoredCodeMap],
        code_map_revisions: tuple[tuple[str, int], ...],
    ) -> SurveyPlan:
        key = (profile.tenant_id, profile.id, revision, code_map_revisions)
        with self._lock:
            plan = self._plans.get(key)
        if plan is not None:
            return plan
        plan = build_plan(profile, revision, code_maps, self._prompts)
        with self._lock:
            if len(self._plans) >= self._max:
                self._plans.clear()
            self._plans[key] = plan
        return plan
