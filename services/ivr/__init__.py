"""IVR service: FreeSWITCH's outbound event socket -> post-call DTMF survey -> JetStream.

Layout (one concern a module):

- ``esl_frames``   incremental, bounded parser of event-socket frames (no greenswitch parsing)
- ``esl_session``  greenswitch ``OutboundSession`` / ``OutboundESLServer`` subclasses with the
                   0.0.19 sharp edges removed (Event-UUID correlation, linger, bounded reads)
- ``pagd``         play_and_get_digits arguments, digit regexes, re-validation of digits
- ``prompts``      PromptRef -> what FreeSWITCH plays (http_cache:// signed URL or say: TTS)
- ``plan``         a resolved profile as a ready-to-run survey plan (cached per revision)
- ``config_index`` in-memory index of the NATS KV buckets, kept current by a watch
- ``loop_thread``  the asyncio loop thread nats-py lives in, and the gevent hand-off
- ``publisher``    bounded buffer + retries until JetStream acknowledges
- ``survey``       runs one survey on one session
- ``metrics``      Prometheus metrics
- ``server``       wires everything, SIGTERM drain
- ``cli``          ``convtrack ivr``
"""
