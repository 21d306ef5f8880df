"""The sans-IO parts of qgactl.wire: Decoder, parse_reply, encode_request, Deadline."""

from __future__ import annotations

import inspect
import json
import time

import pytest

from qgactl.errors import AgentCommandError, ExitCode, ProtocolError
from qgactl.wire import DELIMITER, MAX_REPLY_BYTES, Deadline, Decoder, encode_request, parse_reply

# What an agent sends around a sync: junk, a parse error, the delimiter, the sync reply, a reply.
STREAM = (
    b"junk\n"
    b'{"error": {"class": "GenericError", "desc": "JSON parse error"}}\n'
    b"half a li\xff"
    b'{"return": 42}\n'
    b"\n  \r\n"
    b'{"return": {"host-name": "caf\xc3\xa9"}}\n'
)
EVENTS = [
    b"junk",
    b'{"error": {"class": "GenericError", "desc": "JSON parse error"}}',
    DELIMITER,
    b'{"return": 42}',
    b'{"return": {"host-name": "caf\xc3\xa9"}}',
]


def feed_all(decoder, chunks):
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


# -- Decoder --------------------------------------------------------------------------------


def test_decoder_whole_stream():
    assert Decoder().feed(STREAM) == EVENTS


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_decoder_split_at_every_byte_boundary(cut):
    assert feed_all(Decoder(), [STREAM[:cut], STREAM[cut:]]) == EVENTS


def test_decoder_split_at_every_byte_boundary_at_once():
    """One byte per feed (a dripping agent) is the every-boundary split, all together."""
    assert feed_all(Decoder(), [bytes([b]) for b in STREAM]) == EVENTS


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_decoder_split_in_three(cut):
    second = min(len(STREAM), cut + 7)
    assert feed_all(Decoder(), [STREAM[:cut], STREAM[cut:second], STREAM[second:]]) == EVENTS


def test_decoder_delimiter_drops_the_partial_line_before_it():
    decoder = Decoder()
    assert decoder.feed(b'{"execute": "guest-in') == []
    assert decoder.feed(b'fo", "argu\xff{"return": 7}\n') == [DELIMITER, b'{"return": 7}']


def test_decoder_consecutive_delimiters():
    assert Decoder().feed(b"\xff\xffx\xff{}\n") == [DELIMITER, DELIMITER, DELIMITER, b"{}"]


def test_decoder_skips_blank_lines():
    assert Decoder().feed(b"\n\n \t\r\n{}\n\n") == [b"{}"]


def test_decoder_keeps_an_unfinished_line_for_later():
    decoder = Decoder()
    assert decoder.feed(b'{"return": 1}\n{"ret') == [b'{"return": 1}']
    assert decoder.feed(b'urn": 2}') == []
    assert decoder.feed(b"\n") == [b'{"return": 2}']


def test_decoder_bound_refused_as_soon_as_passed():
    decoder = Decoder(max_line=10)
    for _ in range(10):
        assert decoder.feed(b"x") == []
        assert len(decoder._buffer) <= 10  # never holds more than the bound
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(b"x")  # the 11th byte
    assert caught.value.exit_code == ExitCode.PROTOCOL
    assert "longer than 10 bytes" in caught.value.message


def test_decoder_line_at_the_bound_passes():
    assert Decoder(max_line=10).feed(b"x" * 10 + b"\n") == [b"x" * 10]


def test_decoder_bound_in_one_big_chunk():
    with pytest.raises(ProtocolError):
        Decoder(max_line=10).feed(b"x" * 1000)


def test_decoder_complete_overlong_line_is_refused_too():
    """A line past the bound is refused even when its newline came in the same chunk."""
    with pytest.raises(ProtocolError):
        Decoder(max_line=10).feed(b"x" * 11 + b"\n")


def test_decoder_bound_is_per_line_not_per_stream():
    decoder = Decoder(max_line=10)
    events = feed_all(decoder, [b"x" * 9 + b"\n"] * 100 + [b"y" * 9 + b"\xff"] * 100)
    assert len(events) == 200


def test_decoder_bound_applies_after_a_delimiter():
    decoder = Decoder(max_line=10)
    assert decoder.feed(b"x" * 8 + b"\xff" + b"y" * 8) == [DELIMITER]
    with pytest.raises(ProtocolError):
        decoder.feed(b"y" * 3)


def test_decoder_default_bound_is_the_reply_bound():
    # (not by feeding 64 MiB: that would raise this process's peak RSS, which a child started
    # with vfork inherits into its own ru_maxrss, and skew run_qgactl's memory figures)
    assert inspect.signature(Decoder).parameters["max_line"].default == MAX_REPLY_BYTES
    assert 16 * 2**20 < MAX_REPLY_BYTES <= 128 * 2**20  # above guest-exec's 16 MiB per stream


def test_decoder_dripped_input_stays_linear():
    """A byte-at-a-time agent must not make the decoder rescan its buffer (O(n^2))."""
    decoder = Decoder()
    started = time.perf_counter()
    for _ in range(200_000):
        decoder.feed(b"x")
    assert decoder.feed(b"\n") == [b"x" * 200_000]
    assert time.perf_counter() - started < 5  # quadratic would be tens of seconds


# -- parse_reply ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, value",
    [
        (b'{"return": {}}', {}),
        (b'{"return": 123}', 123),
        (b'{"return": null}', None),
        (b'{"return": [1, "a"], "id": "x1"}', [1, "a"]),  # a request id is echoed back
        ('{"return": "caf\u00e9"}', "caf\u00e9"),  # str from libvirt
        (b'{"return": "caf\xc3\xa9"}', "caf\u00e9"),
    ],
)
def test_parse_reply_return(line, value):
    reply = parse_reply(line, "guest-x")
    assert not reply.is_error
    assert reply.result("guest-x") == value
    assert json.loads(reply.text) == reply.message


def test_parse_reply_keeps_the_text_as_sent():
    line = b'{"return":  {"b": 1, "a": 2}}'
    assert parse_reply(line, "guest-x").text == line.decode()


def test_parse_reply_error():
    reply = parse_reply(
        b'{"error": {"class": "CommandNotFound", "desc": "Command guest-x has been disabled"}}',
        "guest-x",
    )
    assert reply.is_error
    with pytest.raises(AgentCommandError) as caught:
        reply.result("guest-x")
    error = caught.value
    assert error.exit_code == ExitCode.AGENT_ERROR
    assert (error.command, error.error_class) == ("guest-x", "CommandNotFound")
    assert error.is_disabled and error.hint


def test_parse_reply_error_with_extra_fields_in_error():
    reply = parse_reply(b'{"error": {"class": "E", "desc": "d", "data": {}}}', "c")
    assert reply.is_error


@pytest.mark.parametrize(
    "line",
    [
        b"[]",
        b"{}",
        b'{"foo": 1}',
        b'{"return": 1, "error": {}}',
        b'{"return": 1, "foo": 2}',
        b'{"error": "x"}',
        b'{"error": {}}',
        b'{"error": {"class": "GenericError"}}',
        b'{"error": {"desc": "x"}}',
        b'{"error": {"class": 1, "desc": "x"}}',
        b'{"error": {"class": "E", "desc": null}}',
        b"42",
        b'"return"',
        b"null",
    ],
)
def test_parse_reply_wrong_shapes(line):
    with pytest.raises(ProtocolError) as caught:
        parse_reply(line, "guest-x")
    assert caught.value.exit_code == ExitCode.PROTOCOL
    assert "wrong shape" in caught.value.message
    assert caught.value.data["received"] == line.decode()


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b'{"return": 1',
        b'{"return": 1} trailing',
        b'{"return": "caf\xc3\x28"}',  # invalid UTF-8
        b'{"return": "\x80"}',
        b'{"return": "a\x1bb"}',  # raw control character inside a string
        b'{"return": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"",
    ],
    ids=[
        "text",
        "truncated",
        "trailing",
        "bad-utf8",
        "lone-continuation",
        "raw-control",
        "deep",
        "empty",
    ],
)
def test_parse_reply_not_json(line):
    with pytest.raises(ProtocolError) as caught:
        parse_reply(line, "guest-x")
    assert "not JSON" in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_parse_reply_error_preview_is_bounded():
    with pytest.raises(ProtocolError) as caught:
        parse_reply(b"[" + b"1," * 100_000, "guest-x")
    assert len(caught.value.data["received"]) <= 203


# -- encode_request -------------------------------------------------------------------------


def test_encode_request_without_arguments():
    assert encode_request("guest-ping") == b'{"execute":"guest-ping"}'
    assert encode_request("guest-ping", {}) == b'{"execute":"guest-ping"}'


def test_encode_request_with_arguments():
    data = encode_request("guest-sync-delimited", {"id": 2**62})
    assert data == b'{"execute":"guest-sync-delimited","arguments":{"id":4611686018427387904}}'
    assert b"\n" not in data and DELIMITER not in data


def test_encode_request_is_ascii():
    data = encode_request("guest-file-open", {"path": "/tmp/caf\u00e9\n"})
    data.decode("ascii")
    assert json.loads(data) == {
        "execute": "guest-file-open",
        "arguments": {"path": "/tmp/caf\u00e9\n"},
    }


# -- Deadline -------------------------------------------------------------------------------


def test_deadline_counts_down():
    deadline = Deadline(10)
    assert deadline.seconds == 10
    assert 9 < deadline.remaining() <= 10
    assert not deadline.expired
    first = deadline.remaining()
    time.sleep(0.01)
    assert deadline.remaining() < first


def test_deadline_expires():
    deadline = Deadline(0.02)
    time.sleep(0.03)
    assert deadline.expired
    assert deadline.remaining() < 0


def test_deadline_zero_is_expired_at_once():
    assert Deadline(0).expired
