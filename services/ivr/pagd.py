"""play_and_get_digits: argument string, digit regexes, and our own re-check of the digits.

FreeSWITCH splits the argument string on spaces into at most 11 tokens; single quotes group a
token and ``''`` is an empty one (esl.md §4). greenswitch formats every argument with ``%s``, so
a missing one becomes the literal ``None`` (a ``None`` regexp rejects every input); here every
token is a ``str`` and an empty token is always written as ``''``.

Regexes avoid backslashes (``[0-9]`` instead of ``\\d``, ``[*]`` instead of ``\\*``) because
FreeSWITCH's argument splitter treats backslash as an escape character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.domain import CodeMapEntry

AnswerVerdict = Literal["ok", "invalid"]


@dataclass(frozen=True, slots=True)
class PagdArgs:
    """The 11 positional arguments of play_and_get_digits, in FreeSWITCH's order."""

    min_digits: int
    max_digits: int
    tries: int
    timeout_ms: int
    terminators: str
    prompt_file: str
    invalid_file: str
    variable: str
    regex: str
    digit_timeout_ms: int
    transfer_on_failure: str = ""

    def render(self) -> str:
        tokens = [
            str(self.min_digits),
            str(self.max_digits),
            str(self.tries),
            str(self.timeout_ms),
            self.terminators,
            self.prompt_file,
            self.invalid_file,
            self.variable,
            self.regex,
            str(self.digit_timeout_ms),
            self.transfer_on_failure,
        ]
        return " ".join(quote_token(t) for t in tokens)


def quote_token(token: str) -> str:
    """One argument token: ``''`` when empty, single-quoted when it holds a space.

    A single quote inside a token cannot be escaped for FreeSWITCH's splitter, so it is replaced
    by a typographic apostrophe (only ever found in text-to-speech prompts).
    """
    token = token.replace("'", "’").replace("\n", " ").replace("\r", " ")
    if not token:
        return "''"
    if " " in token or "\t" in token:
        return f"'{token}'"
    return token


def _code_alternative(code: str) -> str:
    return code.replace("*", "[*]")


def code_regex(codes: list[str]) -> str:
    """Anchored alternation of the code map's codes, longest first, e.g. ``^(12|1|2)$``."""
    ordered = sorted(set(codes), key=lambda c: (-len(c), c))
    return "^(" + "|".join(_code_alternative(c) for c in ordered) + ")$"


def number_regex(min_digits: int, max_digits: int) -> str:
    if min_digits == max_digits:
        return f"^[0-9]{{{min_digits}}}$"
    return f"^[0-9]{{{min_digits},{max_digits}}}$"


@dataclass(frozen=True, slots=True)
class CodeRule:
    """A code map input: the digits must be one of the codes."""

    entries: dict[str, CodeMapEntry]

    @property
    def min_len(self) -> int:
        return min(len(c) for c in self.entries)

    @property
    def max_len(self) -> int:
        return max(len(c) for c in self.entries)

    def regex(self) -> str:
        return code_regex(list(self.entries))


@dataclass(frozen=True, slots=True)
class NumberRule:
    """A free number input (order value): digits only, within the length limits."""

    min_digits: int
    max_digits: int

    def regex(self) -> str:
        return number_regex(self.min_digits, self.max_digits)


InputRule = CodeRule | NumberRule


@dataclass(frozen=True, slots=True)
class Checked:
    """Our verdict on digits FreeSWITCH accepted, with what the answer event carries."""

    verdict: AnswerVerdict
    digits: str
    code: str = ""
    label: str = ""
    value: float | None = None
    success: bool = False


def clean_digits(raw: str, terminators: str) -> str:
    """FreeSWITCH leaves the terminator out unless ``+`` asked for it; strip it defensively."""
    digits = raw.strip()
    while digits and digits[-1] in terminators and digits[-1] in "#*":
        # '*' can be part of a code; only strip it when it is a terminator of this input.
        digits = digits[:-1]
    return digits


def check_digits(rule: InputRule, digits: str) -> Checked:
    """Re-validate digits ourselves: a regex mismatch inside FreeSWITCH is not the only guard."""
    if isinstance(rule, CodeRule):
        entry = rule.entries.get(digits)
        if entry is None:
            return Checked("invalid", digits)
        return Checked("ok", digits, entry.code, entry.label, entry.value, entry.success)
    if digits.isdigit() and digits.isascii() and rule.min_digits <= len(digits) <= rule.max_digits:
        return Checked("ok", digits, value=float(int(digits)))
    return Checked("invalid", digits)
