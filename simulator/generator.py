"""Seeded random calls for load and demo runs (``--calls N --seed S``).

The key mix assumes the typical profile of the product (design.md §1): a 1/2 success question,
a 1-6 school grade and an order value ending with ``#``, repeating in that order if a profile
has more criteria. Same seed, same arguments -> the same calls (channel UUIDs stay random so a
re-run is not de-duplicated away downstream).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.faults import Fault
from simulator.script import CallSpec, KeyEntry

DEFAULT_NUMBERS = ("+493012345678",)
KINDS = ("choice", "grade", "amount")


def _valid(rng: random.Random, kind: str) -> str:
    if kind == "choice":
        return rng.choice("12")
    if kind == "grade":
        return str(rng.randint(1, 6))
    return f"{rng.randint(1, 5000)}#"


def _invalid(rng: random.Random, kind: str) -> str:
    if kind == "choice":
        return rng.choice("3456789")
    if kind == "grade":
        return rng.choice("0789")
    return "*#"  # no digit at all: rejected by any order-value regexp


def _entry(rng: random.Random, kind: str, mix: KeyMix) -> KeyEntry:
    r = rng.random()
    if r < mix.silence:
        return ""
    r -= mix.silence
    if r < mix.invalid_then_valid:
        return [_invalid(rng, kind), _valid(rng, kind)]
    r -= mix.invalid_then_valid
    if r < mix.always_invalid:
        return _invalid(rng, kind)
    return _valid(rng, kind)


@dataclass(frozen=True)
class KeyMix:
    """Shares of the agent's behaviour: per criterion (silence, invalid...), per call (hangup)."""

    silence: float = 0.04
    invalid_then_valid: float = 0.08
    always_invalid: float = 0.03
    hangup: float = 0.05
    barge_in: float = 0.10


def generate_calls(
    n: int,
    *,
    seed: int = 0,
    numbers: Sequence[str] = DEFAULT_NUMBERS,
    criteria: int = 3,
    faults: Sequence[Fault] = (),
    mix: KeyMix | None = None,
) -> list[CallSpec]:
    mix = mix or KeyMix()
    rng = random.Random(seed)
    calls: list[CallSpec] = []
    for _ in range(n):
        keys = [_entry(rng, KINDS[i % len(KINDS)], mix) for i in range(criteria)]
        hangup_after = rng.randrange(criteria) if criteria and rng.random() < mix.hangup else None
        calls.append(
            CallSpec(
                number=rng.choice(list(numbers)),
                caller=f"+49170{rng.randrange(10**7):07d}",
                agent=str(1001 + rng.randrange(20)),
                keys=keys,
                hangup_after=hangup_after,
                faults=list(faults),
                barge_in=rng.random() < mix.barge_in,
            )
        )
    return calls
