"""Fault cases the simulator can inject into one call (script field ``faults`` / ``--fault``).

Each one reproduces a way a real FreeSWITCH connection misbehaves or races (esl.md §7, §8.12);
the IVR must end only the affected call.
"""

from __future__ import annotations

from enum import StrEnum


class Fault(StrEnum):
    # Every frame leaves in several TCP writes cut at random byte offsets (must be tolerated).
    SPLIT_FRAMES = "split_frames"
    # The first CHANNEL_EXECUTE_COMPLETE is cut mid-body and the connection closed
    # (greenswitch 0.0.19 spins its hub forever on this).
    TRUNCATED_BODY = "truncated_body"
    # A block without Content-Type is sent before the first CHANNEL_EXECUTE_COMPLETE
    # (greenswitch: KeyError in its reader greenlet).
    MALFORMED_FRAME = "malformed_frame"
    # On a hang-up with linger: the linger notice before / after the running app's
    # CHANNEL_EXECUTE_COMPLETE (a real race in mod_event_socket). Default: after.
    LINGER_BEFORE_COMPLETE = "linger_before_complete"
    LINGER_AFTER_COMPLETE = "linger_after_complete"
    # The agent hangs up in the middle of the first prompt the IVR plays (welcome or question).
    HANGUP_MID_PROMPT = "hangup_mid_prompt"
    # A channel variable holds "\nX-Injected: bogus": URL-encoded as %0A, which greenswitch's
    # whole-block unquote turns into a bogus header.
    ENCODED_NEWLINE = "encoded_newline"
    # The TCP connection is dropped in the middle of the first question, without any notice.
    DROP_CONNECTION = "drop_connection"


FAULT_NAMES = tuple(f.value for f in Fault)
