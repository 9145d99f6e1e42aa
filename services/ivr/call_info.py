"""Who and what a call is about, from the channel data of the ``connect`` reply."""

from __future__ import annotations

from dataclasses import dataclass

from shared.ids import is_e164, normalize_number


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_uuid: str
    tracking_number: str  # E.164 when it could be made one, else what FreeSWITCH gave
    caller: str
    agent: str

    @property
    def number_valid(self) -> bool:
        return is_e164(self.tracking_number)


def _clean(value: str, limit: int) -> str:
    """Channel data comes from the caller's side (caller id, SIP user): control characters
    (NUL above all, which every event refuses) are dropped, the length is bounded."""
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value[:limit]


def _agent_from_channel_name(name: str) -> str:
    """``sofia/internal/1001@192.0.2.10`` -> ``1001``."""
    user = name.rsplit("/", 1)[-1]
    return user.split("@", 1)[0]


def call_info(data: dict[str, str]) -> CallInfo:
    """The dialplan exports ``ct_tracking_number`` and ``ct_caller`` to the agent leg
    (deploy/freeswitch); without them the leg's own destination and caller id are used."""
    raw_number = data.get("variable_ct_tracking_number") or data.get(
        "Caller-Destination-Number", ""
    )
    caller = data.get("variable_ct_caller") or data.get("Caller-Caller-ID-Number", "")
    agent = (
        data.get("variable_ct_agent")
        or data.get("Caller-Callee-ID-Number")
        or _agent_from_channel_name(data.get("Channel-Name", ""))
    )
    return CallInfo(
        call_uuid=_clean(data.get("Unique-ID") or data.get("variable_uuid") or "", 64),
        tracking_number=_clean(normalize_number(raw_number), 32),
        caller=_clean(caller, 64),
        agent=_clean(agent, 64),
    )
