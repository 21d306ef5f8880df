"""-o json holds every member of -o raw, against the real qemu-ga running on this host: for
each information command it allows, the agent's own reply (-o raw) against qgactl's JSON.

Counters (bytes sent, CPU time, used bytes, the clock) move between the two calls: for those
commands only the members are compared, not their values.
"""

from __future__ import annotations

import json

import pytest
from fidelity import assert_superset

pytestmark = pytest.mark.agent

MOVING = {"time", "net", "diskstats", "cpustats", "fsinfo"}
# users is not here: nobody is logged in on this host (the lab guests have a user)
INFORMATION = [
    "info", "osinfo", "fsinfo", "disks", "hostname", "timezone", "time", "net", "vcpus",
    "diskstats", "cpustats",
]  # fmt: skip


@pytest.mark.parametrize("command", INFORMATION)
def test_json_holds_every_member_of_the_agents_reply(qgactl, host_agent, command):
    socket = ("--socket", host_agent.socket_path)
    raw = qgactl(*socket, "-o", "raw", command)
    data = qgactl(*socket, "-o", "json", command)
    assert raw.code == 0 and data.code == 0, (raw.stderr, data.stderr)
    assert raw.stderr == data.stderr == ""  # qemu-ga's replies lack nothing
    reply = json.loads(raw.stdout)["return"]
    if command == "time":
        assert isinstance(reply, int) and isinstance(data.json()["nanoseconds"], int)
        return
    assert reply, f"{command}: the host's agent answered nothing to compare"
    assert_superset(reply, data.json(), values=command not in MOVING)


def test_osinfo_keeps_variant_id_and_every_member(qgactl, host_agent):
    raw = qgactl("--socket", host_agent.socket_path, "-o", "raw", "osinfo")
    data = qgactl("--socket", host_agent.socket_path, "-o", "json", "osinfo").json()
    reply = json.loads(raw.stdout)["return"]
    for member, value in reply.items():
        assert data[member.replace("-", "_")] == value
