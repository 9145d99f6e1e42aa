"""What the demo creates and dials: a tenant's profiles, numbers and a pool, and the calls.

Kept apart from the process handling in ``demo.py`` so the expectation logic is easy to read:
the demo predicts every report figure from the simulator's own per-call results.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulator import CallSpec

TENANT = "demo"
API_KEY = "demo-key"
UNASSIGNED_NUMBER = "+493099999999"


@dataclass
class DemoProfile:
    id: str
    name: str
    criteria: list[dict[str, Any]]


@dataclass
class DemoSetup:
    profiles: dict[str, DemoProfile] = field(default_factory=dict)  # by profile id
    number_profile: dict[str, str] = field(default_factory=dict)  # number -> profile id


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    return dict(response.json()) if response.content else {}


def create_demo_tenant(api: httpx.Client) -> DemoSetup:
    """Profiles from the three templates plus one combining them; numbers and a pool."""
    setup = DemoSetup()
    made: dict[str, DemoProfile] = {}
    for template, name in (
        ("success", "Erfolg (Demo)"),
        ("school_grade", "Schulnote (Demo)"),
        ("order_value", "Auftragswert (Demo)"),
    ):
        body = _ok(api.post("/v1/profiles", json={"template": template, "name": name}))
        made[template] = DemoProfile(body["id"], body["name"], body["criteria"])
    criteria = [c for p in made.values() for c in p.criteria]
    combined = _ok(
        api.post(
            "/v1/profiles",
            json={"name": "Vertrieb komplett (Demo)", "language": "de", "criteria": criteria},
        )
    )
    made["combined"] = DemoProfile(combined["id"], combined["name"], combined["criteria"])
    setup.profiles = {p.id: p for p in made.values()}

    own = {
        "+4930111000001": made["success"].id,
        "+4930111000002": made["school_grade"].id,
        "+4930111000003": made["order_value"].id,
    }
    for number, profile_id in own.items():
        _ok(api.put(f"/v1/numbers/{number}/profile", json={"profile_id": profile_id}))
        setup.number_profile[number] = profile_id
    pool_numbers = [f"+49301110001{i}" for i in range(5)]
    pool = _ok(api.post("/v1/pools", json={"name": "Berlin Vertrieb", "numbers": pool_numbers}))
    _ok(api.put(f"/v1/pools/{pool['id']}/profile", json={"profile_id": made["combined"].id}))
    for number in pool_numbers:
        setup.number_profile[number] = made["combined"].id
    return setup


def _code_entries(criterion: dict[str, Any]) -> list[dict[str, Any]]:
    code_map = criterion["input"].get("code_map") or {}
    return list(code_map.get("entries", []))


def _valid_keys(criterion: dict[str, Any], rng: random.Random) -> str:
    entries = _code_entries(criterion)
    if entries:
        return str(rng.choice(entries)["code"])
    digits = rng.randint(criterion["input"].get("min_digits", 1), 4)
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1)) + "#"


def _invalid_keys(criterion: dict[str, Any]) -> str:
    entries = _code_entries(criterion)
    if entries:
        used = {e["code"] for e in entries}
        return next(d for d in "9870" if d not in used)
    return "#"  # a number input ended before any digit: too short


def _keys_for(criterion: dict[str, Any], rng: random.Random) -> str | list[str]:
    roll = rng.random()
    if roll < 0.78:
        return _valid_keys(criterion, rng)
    if roll < 0.88:
        return [_invalid_keys(criterion), _valid_keys(criterion, rng)]
    if roll < 0.94:
        return ""  # silence at every try
    return _invalid_keys(criterion)


def build_calls(setup: DemoSetup, count: int, seed: int) -> list[CallSpec]:
    rng = random.Random(seed)
    numbers = sorted(setup.number_profile)
    calls: list[CallSpec] = []
    for i in range(count):
        if rng.random() < 0.03:
            calls.append(CallSpec(number=UNASSIGNED_NUMBER, caller=_caller(rng), keys=[]))
            continue
        number = rng.choice(numbers)
        criteria = setup.profiles[setup.number_profile[number]].criteria
        keys = [_keys_for(c, rng) for c in criteria]
        hangup_after = rng.randrange(len(criteria)) if rng.random() < 0.05 else None
        calls.append(
            CallSpec(
                number=number,
                caller=_caller(rng),
                keys=keys,
                hangup_after=hangup_after,
                uuid=f"demo-{seed}-{i:06d}",
            )
        )
    return calls


def _caller(rng: random.Random) -> str:
    return f"+4917{rng.randint(10_000_000, 99_999_999)}"


# --- expected figures, from the simulator's per-call results ---------------------------------


@dataclass
class CriterionFigures:
    count: int = 0
    not_ok: int = 0
    successes: int = 0
    values: list[float] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)

    def as_report(self) -> dict[str, Any]:
        n = self.count
        return {
            "count": n,
            "error_rate": self.not_ok / n if n else None,
            "success_rate": self.successes / n if n else None,
            "sum": float(sum(self.values)),  # the API sums no values to 0, not to nothing
            "max": max(self.values) if self.values else None,
            "distribution": dict(self.labels),
        }


def expected_figures(
    setup: DemoSetup, calls: list[CallSpec], results: list[Any]
) -> dict[str, dict[str, CriterionFigures]]:
    """profile id -> criterion key -> figures, as the simulator saw the calls."""
    out: dict[str, dict[str, CriterionFigures]] = defaultdict(lambda: defaultdict(CriterionFigures))
    for call, result in zip(calls, results, strict=True):
        profile_id = setup.number_profile.get(call.number)
        if profile_id is None or result.error:
            continue
        criteria = setup.profiles[profile_id].criteria
        for criterion, seen in zip(criteria, result.criteria, strict=False):
            fig = out[profile_id][criterion["key"]]
            fig.count += 1
            if seen.status != "ok":
                fig.not_ok += 1
                continue
            entries = {e["code"]: e for e in _code_entries(criterion)}
            digits = str(seen.digits or "").rstrip("#")
            if entries:
                entry = entries[digits]
                fig.labels[entry["label"]] += 1
                fig.successes += int(bool(entry.get("success")))
                if entry.get("value") is not None:
                    fig.values.append(float(entry["value"]))
            else:
                fig.values.append(float(int(digits)))
    return out
