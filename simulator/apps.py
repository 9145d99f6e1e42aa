"""Dialplan applications as FreeSWITCH runs them on the agent leg (mod_dptools, switch_ivr_*).

Each app is ``async def app(ch, arg) -> None``; it sets ``current_application_response`` and
channel variables like the C code does, and uses ``ch.media(seconds)`` for anything that takes
call time (that is where hang-ups, ``uuid_break`` and nested executions happen).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.tally import CriterionResult, TryResult

if TYPE_CHECKING:
    from simulator.channel import Channel

App = Callable[["Channel", str], Awaitable[None]]

# Causes FreeSWITCH knows (switch_channel_str2cause); anything else becomes NORMAL_CLEARING.
HANGUP_CAUSES = frozenset(
    {
        "NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER", "CALL_REJECTED", "NORMAL_UNSPECIFIED",
        "DESTINATION_OUT_OF_ORDER", "ORIGINATOR_CANCEL", "MANAGER_REQUEST",
        "NO_ROUTE_DESTINATION", "NORMAL_TEMPORARY_FAILURE", "RECOVERY_ON_TIMER_EXPIRE",
        "SYSTEM_SHUTDOWN", "UNALLOCATED_NUMBER",
    }
)  # fmt: skip


def atoi(text: str | None) -> int:
    """C ``atoi``: optional blanks and sign, then leading digits; 0 when there are none."""
    m = re.match(r"\s*([+-]?\d+)", text or "")
    return int(m.group(1)) if m else 0


def _cleanup(token: str) -> str:
    """``cleanup_separated_string``: drop unescaped single quotes, unescape, trim blanks."""
    out: list[str] = []
    i = 0
    while i < len(token):
        c = token[i]
        if c == "\\" and i + 1 < len(token):
            out.append(token[i + 1])
            i += 2
            continue
        if c != "'":
            out.append(c)
        i += 1
    return "".join(out).strip(" \t")


def separate_string(data: str, max_args: int) -> list[str]:
    """``switch_separate_string(buf, ' ', argv, max)``: blank-delimited, single quotes group
    (and are stripped, so ``''`` is an empty argument), backslash escapes the next character,
    runs of blanks collapse, and the last argument takes the rest of the string."""
    args: list[str] = []
    i, n = 0, len(data)
    while i < n and data[i] in " \t":
        i += 1
    while i < n and len(args) < max_args:
        if len(args) == max_args - 1:
            args.append(data[i:])
            break
        start, quoted = i, False
        while i < n:
            c = data[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                quoted = not quoted
            elif c in " \t" and not quoted:
                break
            i += 1
        args.append(data[start:i])
        while i < n and data[i] in " \t":
            i += 1
    return [_cleanup(a) for a in args]


@dataclass(frozen=True)
class PagdArgs:
    """play_and_get_digits' 11 arguments after mod_dptools' parsing and clamping."""

    min_digits: int
    max_digits: int
    tries: int
    timeout_ms: int
    terminators: str
    prompt: str
    invalid_file: str
    variable: str
    regex: str
    digit_timeout_ms: int
    transfer_on_failure: str

    @classmethod
    def parse(cls, data: str) -> PagdArgs:
        argv = separate_string(data, 11) + [""] * 11
        min_digits = max(atoi(argv[0]), 0)  # "if (min_digits <= 0) min_digits = 0"
        max_digits = max(atoi(argv[1]), min_digits)
        timeout = atoi(argv[3]) if argv[3] else 1000
        timeout = max(timeout, 1000)  # "if (timeout <= 1000) timeout = 1000"
        digit_timeout = max(atoi(argv[9]), 0)
        return cls(
            min_digits=min_digits,
            max_digits=max_digits,
            tries=max(atoi(argv[2]), 0),  # not clamped: 0 tries means nothing is played
            timeout_ms=timeout,
            terminators=argv[4] or "#",  # "if (zstr(valid_terminators)) ... = "#""
            prompt=argv[5],
            invalid_file=argv[6],
            variable=argv[7],
            regex=argv[8],
            digit_timeout_ms=digit_timeout or timeout,  # switch_ivr_read: 0 -> timeout
            transfer_on_failure=argv[10],
        )

    @property
    def terminator_required(self) -> bool:
        return self.terminators.startswith("=")

    def is_terminator(self, key: str) -> bool:
        return key in self.terminators

    def appends_terminator(self, key: str) -> bool:
        """``+`` (or ``x``) right before a terminator appends it to the digits."""
        pos = self.terminators.find(key)
        return pos >= 1 and self.terminators[pos - 1] in "+x"


def regex_matches(digits: str, pattern: str) -> bool:
    """``switch_regex_match``: an unanchored PCRE search; a bad pattern matches nothing."""
    try:
        return re.search(pattern, digits) is not None
    except re.error:
        return False


# ---------------------------------------------------------------------------------------------
# play_and_get_digits (switch_play_and_get_digits + switch_ivr_read)


async def _read_once(ch: Channel, a: PagdArgs, entry: str, barge_in: bool) -> TryResult:
    """One ``switch_ivr_read``: prompt (interruptible by the first digit), then collection."""
    ch.unset_var("read_result")
    if a.variable:
        ch.unset_var(a.variable)
    keys = list(entry)
    has_prompt = bool(a.prompt) and a.prompt.lower() != "silence"
    prompt_s = ch.media_seconds(a.prompt) if has_prompt else 0.0
    # When the agent's first key comes, counted from the start of this try.
    first_at = prompt_s * 0.5 if barge_in and has_prompt else prompt_s + ch.cfg.scaled_think
    digits, terminator = "", ""
    if has_prompt:
        if keys and first_at < prompt_s:
            await ch.media(first_at)
            key = keys.pop(0)
            ch.emit_dtmf(key)
            digits = key  # switch_ivr_play_file's args.buf takes the raw digit, terminator or not
        else:
            await ch.media(prompt_s)
    timed_out = False
    if (a.min_digits and len(digits) < a.min_digits) or len(digits) < a.max_digits:
        wait = (a.digit_timeout_ms if digits else a.timeout_ms) / 1000 * ch.cfg.timing
        gap = max(first_at - prompt_s, 0.0) if not digits else ch.cfg.scaled_gap
        while True:
            if not keys or gap > wait:
                await ch.media(wait)  # nobody types within the timeout
                timed_out = True
                break
            await ch.media(gap)
            key = keys.pop(0)
            ch.emit_dtmf(key)
            if a.is_terminator(key):
                terminator = key
                break
            digits += key
            if len(digits) >= a.max_digits:
                break
            wait, gap = a.digit_timeout_ms / 1000 * ch.cfg.timing, ch.cfg.scaled_gap
    # Keys still unconsumed are dropped: the agent model never types ahead into the next try.
    too_small = False
    if terminator:
        ch.set_var("read_terminator_used", terminator)
        if a.appends_terminator(terminator):
            digits += terminator
    elif a.terminator_required:
        too_small = True
    if a.min_digits and len(digits) < a.min_digits:
        too_small = True
    if too_small:
        ch.set_var("read_result", "failure")
    else:
        ch.set_var("read_result", "timeout" if timed_out and not digits else "success")
    if a.max_digits == 1 and len(digits) == 1 and a.is_terminator(digits):
        digits = ""
    if a.variable and digits:
        ch.set_var(a.variable, digits)
    # switch_play_and_get_digits: a timeout with at least min digits is a success.
    success = not too_small and bool(digits)
    if not entry:
        outcome = "silence"
    elif not digits:
        outcome = "empty"
    elif not success:
        outcome = "no_terminator" if a.terminator_required and not terminator else "too_short"
    elif a.regex and not regex_matches(digits, a.regex):
        if a.variable:
            ch.unset_var(a.variable)
            ch.set_var(f"{a.variable}_invalid", digits)
        outcome = "regex_mismatch"
    else:
        outcome = "valid"
    return TryResult(digits=digits, outcome=outcome, terminator=terminator)


def _status(tries: list[TryResult]) -> str:
    if any(t.outcome == "valid" for t in tries):
        return "ok"
    if all(t.outcome == "silence" for t in tries):
        return "timeout"
    return "invalid"


async def play_and_get_digits(ch: Channel, arg: str) -> None:
    a = PagdArgs.parse(arg)
    index = ch.begin_criterion()
    crit = CriterionResult(
        index=index,
        variable=a.variable,
        status="hangup",  # until it finishes: an interrupted criterion stays "hangup"
        digits="",
        application_uuid=ch.current_app_uuid,
        args=arg,
    )
    ch.result.criteria.append(crit)
    if a.regex and a.variable:
        ch.unset_var(f"{a.variable}_invalid")
    hang_now = ch.agent_hangs_up_in_criterion(index)
    try:
        for attempt in range(a.tries):
            if hang_now and attempt == 0:
                # switch_ivr_read clears both before the prompt starts, so the
                # EXECUTE_COMPLETE after the hang-up carries neither.
                ch.unset_var("read_result")
                ch.unset_var(a.variable)
                await ch.agent_hangup_mid_prompt(a.prompt)
            entry = ch.spec.entry(index, attempt)
            t = await _read_once(ch, a, entry, ch.spec.barge_in)
            crit.tries.append(t)
            if t.outcome == "valid":
                break
            if a.min_digits == 0 and not t.digits and ch.get_var("read_terminator_used"):
                break  # FreeSWITCH quirk: min 0, nothing typed, a terminator ever used: success
            if a.invalid_file:
                await ch.media(ch.media_seconds(a.invalid_file))
    except ch.Gone:
        crit.status = "hangup"
        crit.digits = crit.tries[-1].digits if crit.tries else ""
        raise
    crit.status = _status(crit.tries)  # type: ignore[assignment]
    valid = [t for t in crit.tries if t.outcome == "valid"]
    crit.digits = valid[0].digits if valid else (crit.tries[-1].digits if crit.tries else "")
    if not valid and a.transfer_on_failure:
        ch.transfer_on_failure(a.transfer_on_failure)


# ---------------------------------------------------------------------------------------------
# The other apps an IVR uses


async def playback(ch: Channel, arg: str) -> None:
    ch.unset_var("playback_terminator_used")
    ch.result.playbacks.append(arg)
    if not arg:
        ch.set_var("current_application_response", "FILE NOT FOUND")
        return
    if ch.agent_hangs_up_in_playback():
        await ch.agent_hangup_mid_prompt(arg)
    seconds = ch.media_seconds(arg)
    await ch.media(seconds, breakable=True)
    ch.set_var("playback_ms", str(int(seconds / max(ch.cfg.timing, 1e-9) * 1000)))
    ch.set_var("current_application_response", "FILE PLAYED")


async def speak_like(ch: Channel, arg: str) -> None:
    """say / speak / phrase: something is spoken for a prompt's duration."""
    ch.result.playbacks.append(arg)
    if ch.agent_hangs_up_in_playback():
        await ch.agent_hangup_mid_prompt(arg)
    await ch.media(ch.media_seconds(""), breakable=True)


async def hangup(ch: Channel, arg: str) -> None:
    cause = arg.strip().upper() or "NORMAL_CLEARING"
    ch.hangup(cause if cause in HANGUP_CAUSES else "NORMAL_CLEARING", by="ivr")


async def sleep(ch: Channel, arg: str) -> None:
    await ch.media(atoi(arg) / 1000 * ch.cfg.timing)


async def set_var(ch: Channel, arg: str) -> None:
    name, _, value = arg.partition("=")
    if name:
        ch.set_var(name.strip(), value)


async def export_var(ch: Channel, arg: str) -> None:
    name, _, value = arg.partition("=")
    if name.startswith("nolocal:"):
        return  # goes only to a B leg, which this channel never creates
    await set_var(ch, f"{name}={value}")


async def unset_var(ch: Channel, arg: str) -> None:
    ch.unset_var(arg.strip())


async def noop(ch: Channel, arg: str) -> None:
    """answer (the agent leg is answered already), pre_answer, park, log, info, ..."""


APPS: dict[str, App] = {
    "play_and_get_digits": play_and_get_digits,
    "playback": playback,
    "say": speak_like,
    "speak": speak_like,
    "phrase": speak_like,
    "hangup": hangup,
    "sleep": sleep,
    "set": set_var,
    "export": export_var,
    "unset": unset_var,
    "answer": noop,
    "pre_answer": noop,
    "ring_ready": noop,
    "park": noop,
    "log": noop,
    "info": noop,
}
