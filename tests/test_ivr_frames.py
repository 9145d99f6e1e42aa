"""The event-socket frame parser that replaces greenswitch 0.0.19's reader (esl.md §1, §7)."""

from __future__ import annotations

import json

import pytest

from services.ivr.esl_frames import (
    FrameError,
    FrameParser,
    parse_header_lines,
    parse_json_event,
    parse_plain_event,
)


def plain_event(lines: list[str], body: str = "") -> bytes:
    text = "".join(f"{line}\n" for line in lines)
    text += f"Content-Length: {len(body.encode())}\n\n{body}" if body else "\n"
    raw = text.encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(raw) + raw


COMPLETE = plain_event(
    [
        "Event-Name: CHANNEL_EXECUTE_COMPLETE",
        "Unique-ID: u1",
        "Application: play_and_get_digits",
        "Application-UUID: a1",
        "variable_ct_in_q: 4200",
        "variable_sip_to: %3Csip%3A1001%40example.org%3E",
    ]
)


def test_whole_and_split_frames_give_the_same_result() -> None:
    stream = (
        b"Content-Type: command/reply\nReply-Text: +OK\n\n"
        + COMPLETE
        + b"Content-Type: text/disconnect-notice\nContent-Disposition: linger\n"
        b"Content-Length: 0\n\n"
    )
    whole = FrameParser().feed(stream)
    parser = FrameParser()
    split = []
    for i in range(len(stream)):  # one byte a TCP read
        split += parser.feed(stream[i : i + 1])
    assert [f.headers for f in whole] == [f.headers for f in split]
    assert [f.content_type for f in whole] == [
        "command/reply",
        "text/event-plain",
        "text/disconnect-notice",
    ]
    event = parse_plain_event(whole[1].body)
    assert event.headers["variable_ct_in_q"] == "4200"
    assert event.headers["variable_sip_to"] == "<sip:1001@example.org>"
    assert not parser.mid_frame


def test_encoded_newline_does_not_forge_a_header() -> None:
    # greenswitch unquotes the block before splitting: "%0AX-Injected: bogus" becomes a header.
    event = parse_plain_event(
        "Event-Name: CHANNEL_DATA\nvariable_note: a%0AX-Injected%3A%20bogus\n\n"
    )
    assert "X-Injected" not in event.headers
    assert event.headers["variable_note"] == "a\nX-Injected: bogus"


def test_event_body_is_kept_apart_from_inner_content_length() -> None:
    body = "+OK done\n"
    frame = FrameParser().feed(
        plain_event(["Event-Name: BACKGROUND_JOB", "Job-UUID: j"], body=body)
    )[0]
    event = parse_plain_event(frame.body)
    assert event.headers["Content-Length"] == str(len(body))
    assert event.body == body


def test_crlf_line_ends_end_a_block() -> None:
    frames = FrameParser().feed(b"Content-Type: command/reply\r\nReply-Text: +OK\r\n\r\n")
    assert frames[0].headers == {"Content-Type": "command/reply", "Reply-Text": "+OK"}


def test_connect_reply_values_are_decoded_per_line() -> None:
    frames = FrameParser().feed(
        b"Event-Name: CHANNEL_DATA\nChannel-Name: sofia/internal/1001%40192.0.2.10\n"
        b"Content-Type: command/reply\nReply-Text: %2BOK%0A\n\n"
    )
    assert frames[0].headers["Reply-Text"] == "+OK\n"
    assert frames[0].headers["Channel-Name"] == "sofia/internal/1001@192.0.2.10"


def test_disconnect_notice_body_is_consumed() -> None:
    notice = (
        b"Content-Type: text/disconnect-notice\nContent-Disposition: disconnect\n"
        b"Content-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    )
    frames = FrameParser().feed(notice + b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    assert len(frames) == 2
    assert frames[0].body.startswith("Disconnected, goodbye.")


def test_block_without_content_type_is_a_frame_not_a_crash() -> None:
    frames = FrameParser().feed(b"Event-Name: CHANNEL_EXECUTE\nUnique-ID: u\n\n" + COMPLETE)
    assert frames[0].content_type == ""
    assert frames[1].content_type == "text/event-plain"


def test_json_event_is_parsed() -> None:
    doc = {"Event-Name": "DTMF", "DTMF-Digit": "#", "_body": "x"}
    event = parse_json_event(json.dumps(doc))
    assert event.headers["DTMF-Digit"] == "#"
    assert event.body == "x"
    with pytest.raises(FrameError):
        parse_json_event("{not json")


def test_multiline_unencoded_value_and_duplicate_header() -> None:
    headers = parse_header_lines(
        "Event-Name: CHANNEL_CREATE\nvariable_switch_r_sdp: v=0\no=- 1 2 IN IP4 1.2.3.4\n"
        "a=rtpmap:0 PCMU/8000\nHangup-Cause: NORMAL_CLEARING\nHangup-Cause: OTHER\n"
    )
    assert headers["variable_switch_r_sdp"] == "v=0\no=- 1 2 IN IP4 1.2.3.4\na=rtpmap:0 PCMU/8000"
    assert headers["Hangup-Cause"] == "NORMAL_CLEARING"


def test_truncated_body_stays_mid_frame() -> None:
    parser = FrameParser()
    assert parser.feed(COMPLETE[:-10]) == []
    assert parser.mid_frame  # the reader bounds the next read in time and treats EOF as loss


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: text/event-plain\nContent-Length: abc\n\n",
        b"Content-Type: text/event-plain\nContent-Length: -1\n\n",
        b"Content-Type: text/event-plain\nContent-Length: 99999999999\n\n",
    ],
)
def test_bad_content_length_is_an_error(raw: bytes) -> None:
    with pytest.raises(FrameError):
        FrameParser().feed(raw)


def test_oversized_header_block_is_an_error() -> None:
    with pytest.raises(FrameError):
        FrameParser(max_head=1024).feed(b"X: " + b"a" * 2048)
