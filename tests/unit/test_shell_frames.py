"""The framing between qgactl shell and its guest relay (qgactl/shell_relay.py)."""

from __future__ import annotations

from qgactl.shell_relay import HEADER, STATUS, WINSIZE, split_frames


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def test_whole_frames_come_out_and_a_partial_one_waits() -> None:
    stream = frame(b"d", b"ls\r") + frame(b"w", WINSIZE.pack(40, 120)) + frame(b"x", STATUS.pack(3))
    frames, rest = split_frames(stream[:-2])
    assert frames == [(b"d", b"ls\r"), (b"w", WINSIZE.pack(40, 120))]
    assert rest == stream[-(HEADER.size + STATUS.size) : -2]
    frames, rest = split_frames(rest + stream[-2:])
    assert frames == [(b"x", STATUS.pack(3))] and rest == b""


def test_an_empty_payload_and_a_lone_header_byte() -> None:
    assert split_frames(frame(b"d", b"") + b"d") == ([(b"d", b"")], b"d")
