"""Lane pieces without a guest: the framing (qgactl/lane_guest.py) fed in pieces of any size,
and which of Ansible's commands the plugin sends to the warm interpreter."""

from __future__ import annotations

import importlib.util
import os
import random

import pytest

from lab import ansiblelab
from qgactl.lane_guest import HEADER, FrameReader


def frame(kind: bytes, channel: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, channel, len(payload)) + payload


def test_frames_come_out_whole_however_the_stream_is_cut() -> None:
    frames = [(b"q", 1, b'{"op": "get"}'), (b"i", 1, os.urandom(300_000)), (b"i", 1, b""),
              (b"k", 7, b""), (b"o", 2, b"x")]  # fmt: skip
    stream = b"".join(frame(*f) for f in frames)
    for seed in range(20):
        cuts = sorted(random.Random(seed).sample(range(1, len(stream)), 40))
        reader = FrameReader()
        got = []
        for start, end in zip([0, *cuts], [*cuts, len(stream)]):
            got += reader.feed(stream[start:end])
        assert got == frames
    assert FrameReader().feed(stream[:-1])[-1] == frames[-2]  # the last one waits for its byte


@pytest.fixture(scope="module")
def plugin():
    pytest.importorskip("ansible")
    path = ansiblelab.ROOT / "ansible" / "plugins" / "connection" / "agent.py"
    spec = importlib.util.spec_from_file_location("qgactl_agent_plugin", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("/bin/sh -c '/usr/bin/python3 && sleep 0'", ("/usr/bin/python3", {})),
        ("/bin/sh -c 'LANG=C.UTF-8 /usr/bin/python3.11 && sleep 0'",
         ("/usr/bin/python3.11", {"LANG": "C.UTF-8"})),
        ("/bin/sh -c 'python3'", ("python3", {})),
        # anything the shell would do more than run python: the shell runs it
        ("/bin/sh -c 'X=$(id) /usr/bin/python3 && sleep 0'", None),
        ("/bin/sh -c 'cd /tmp && /usr/bin/python3 && sleep 0'", None),
        ("/bin/sh -c '/usr/bin/python3; rm -rf /tmp/x'", None),
        ("/bin/sh -c 'sudo -H -S -n -u root /bin/sh -c /usr/bin/python3'", None),
        ("/bin/sh -c 'echo ~ && sleep 0'", None),
        ("/bin/sh -c '/usr/bin/python3 /tmp/module.py && sleep 0'", None),
        ("/bin/bash -c '/usr/bin/python3'", None),
        ("/bin/sh -c 'unbalanced", None),
    ],
)  # fmt: skip
def test_only_a_plain_pipelined_python_goes_to_the_warm_interpreter(plugin, cmd, expected):
    assert plugin.pipelined_python(cmd) == expected


def test_a_frame_longer_than_the_limit_is_refused_before_its_bytes_arrive() -> None:
    reader = FrameReader(limit=1024)
    with pytest.raises(ValueError, match="longer than 1024"):
        reader.feed(HEADER.pack(b"o", 1, 1025))  # a hostile guest's 4 GiB frame would too
