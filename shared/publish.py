"""Publishing events to JetStream, de-duplicated by ``Nats-Msg-Id`` (design §6).

The message id is the answer id (or survey id), so a retried publish within the stream's
duplicate window is dropped by JetStream itself.
"""

from __future__ import annotations

from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from shared.events import AnswerEvent, SurveyEvent
from shared.nats_names import answers_subject, surveys_subject


def encode(event: AnswerEvent | SurveyEvent) -> tuple[str, bytes, dict[str, str]]:
    """(subject, body, headers) of an event; the one place the wire form is decided."""
    if isinstance(event, AnswerEvent):
        subject, msg_id = answers_subject(event.tenant_id), event.answer_id
    else:
        subject, msg_id = surveys_subject(event.tenant_id), event.survey_id
    return subject, event.model_dump_json().encode(), {"Nats-Msg-Id": msg_id}


async def publish_event(
    js: JetStreamContext, event: AnswerEvent | SurveyEvent, timeout: float = 5.0
) -> PubAck:
    subject, body, headers = encode(event)
    return await js.publish(subject, body, headers=headers, timeout=timeout)
