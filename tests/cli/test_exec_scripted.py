"""qgactl exec against scripted agents, for what a real Linux qemu-ga can't show on demand: a
Windows guest's replies, a process that runs for a known time (to see the polling), a lost
status reply, a blocked guest-exec. The real-guest tests are tests/vm/test_exec.py.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from typing import Any

from fakeagent import FakeAgent, Peer, sentinel

COMMANDS = [
    "guest-exec",
    "guest-exec-status",
    "guest-file-open",
    "guest-file-read",
    "guest-file-write",
    "guest-file-close",
    "guest-get-osinfo",
]


class ScriptedGuest:
    """An agent whose guest-exec'd process runs ``seconds`` and then exits; every request is
    recorded with its arrival time."""

    def __init__(
        self,
        os_id: str = "mswindows",
        seconds: float = 0.0,
        disabled: tuple[str, ...] = (),
        lose_exit: bool = False,
    ) -> None:
        self.os_id = os_id
        self.seconds = seconds
        self.disabled = disabled
        self.lose_exit = lose_exit
        self.requests: list[tuple[float, dict[str, Any]]] = []
        self.started: dict[int, float] = {}

    def __call__(self, peer: Peer) -> None:
        if not peer.sync():
            return
        while (request := peer.read_request()) is not None:
            self.requests.append((time.monotonic(), request))
            reply = self.answer(request)
            if reply is not None:
                peer.send(reply)

    def answer(self, request: dict[str, Any]) -> bytes | None:
        command, arguments = request["execute"], request.get("arguments", {})
        if command == "guest-sync-delimited":
            return sentinel(arguments["id"])
        if command in self.disabled:
            return _error("CommandNotFound", f"Command {command} has been disabled")
        if command == "guest-info":
            commands = [{"name": name, "enabled": name not in self.disabled} for name in COMMANDS]
            return _ok({"version": "9.2.0", "supported_commands": commands})
        if command == "guest-get-osinfo":
            return _ok({"id": self.os_id, "name": "Microsoft Windows", "version": "10"})
        if command == "guest-exec":
            if self.os_id == "mswindows" and arguments["path"] == "/bin/sh":
                path = arguments["path"]  # glib's spawn error, as a real Windows agent says it
                desc = f"Failed to execute child process \u201c{path}\u201d (No such file or directory)"  # noqa: E501
                return _error("GenericError", desc)
            pid = 4000 + len(self.requests)
            self.started[pid] = time.monotonic()
            if arguments["path"] == "taskkill.exe":  # ends its target and itself at once
                self.started[int(arguments["arg"][-1])] = self.started[pid] = -1e9
            return _ok({"pid": pid})
        if command == "guest-exec-status":
            pid = arguments["pid"]
            if pid not in self.started:
                return _error("GenericError", "Invalid parameter 'pid'")
            if time.monotonic() - self.started[pid] < self.seconds:
                return _ok({"exited": False})
            del self.started[pid]
            if self.lose_exit:
                self.lose_exit = False
                return None  # the reply is lost: the process is reaped all the same
            out = base64.b64encode(b"C:\\> dir\r\n").decode()
            err = base64.b64encode(b"warning\r\n").decode()
            return _ok({"exited": True, "exitcode": 2, "out-data": out, "err-data": err})
        if command == "guest-file-open":
            if self.os_id == "mswindows":  # C:\\run does not exist (qemu-ga's win32 words)
                path = arguments["path"]
                desc = f"failed to open file '{path}': The system cannot find the path specified."
                return _error("GenericError", desc)
            return _ok(len(self.requests))  # spool files of a POSIX guest: empty
        if command == "guest-file-read":
            return _ok({"count": 0, "buf-b64": "", "eof": True})
        if command == "guest-file-close":
            return _ok({})
        return _error("GenericError", f"unexpected {command} in this scenario")

    def commands(self) -> list[str]:
        return [request["execute"] for _, request in self.requests]

    def sent(self, command: str) -> list[dict[str, Any]]:
        return [r.get("arguments", {}) for _, r in self.requests if r["execute"] == command]


def _ok(value: Any) -> bytes:
    return json.dumps({"return": value}).encode() + b"\n"


def _error(error_class: str, desc: str) -> bytes:
    return json.dumps({"error": {"class": error_class, "desc": desc}}).encode() + b"\n"


def test_windows_guest_uses_the_agents_capture_and_its_status(qgactl):
    guest = ScriptedGuest()
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "cmd.exe", "/c", "dir")
    assert run.code == 2
    assert run.stdout == "C:\\> dir\r\n" and run.stderr == "warning\r\n"
    tried_sh, started = guest.sent("guest-exec")
    assert started["path"] == "cmd.exe" and started["arg"] == ["/c", "dir"]
    assert started["capture-output"] is True
    # The wrapper tried (no /bin/sh on Windows), then no file is used at all
    assert tried_sh["path"] == "/bin/sh"
    assert not {"guest-file-open", "guest-file-read", "guest-file-close"} & set(guest.commands())


def test_windows_with_its_file_commands_blocked_still_uses_capture(qgactl):
    blocked = ("guest-file-open", "guest-file-read", "guest-file-write", "guest-file-close")
    guest = ScriptedGuest(disabled=blocked)
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "cmd.exe", "/c", "dir")
    assert run.code == 2 and run.stdout == "C:\\> dir\r\n", run.stderr
    assert "guest-file-open" not in guest.commands()  # guest-info said blocked: not tried


def test_a_short_command_on_a_posix_guest_costs_guest_exec_and_its_status_only(qgactl):
    guest = ScriptedGuest(os_id="debian")
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "true")
    # The wrapper handed the (small) output back through the agent's capture: no osinfo,
    # no guest-info, no spool file opened.
    assert run.code == 2 and run.stdout == "C:\\> dir\r\n", run.stderr
    assert set(guest.commands()) == {"guest-exec", "guest-exec-status"}
    (started,) = guest.sent("guest-exec")
    assert started["path"] == "/bin/sh" and started["arg"][0] == "-c"


def test_windows_shell_is_cmd_and_stdin_goes_as_input_data(qgactl):
    guest = ScriptedGuest()
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "-i", "-s", "--", "type", "con", stdin=b"abc")
    assert run.code == 2
    (started,) = guest.sent("guest-exec")  # the stdin spool's refusal said Windows at once
    assert (started["path"], started["arg"]) == ("cmd.exe", ["/c", "type con"])
    assert base64.b64decode(started["input-data"]) == b"abc"


def test_windows_stdin_over_the_limit_is_refused_before_anything_runs(qgactl):
    guest = ScriptedGuest()
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "-i", "--", "x", stdin=b"x" * 200_000)
    assert run.code == 125
    assert "160 KiB" in run.stderr
    assert "guest-exec" not in guest.commands()


def test_windows_timeout_run_kills_through_taskkill(qgactl):
    guest = ScriptedGuest(seconds=30)
    with FakeAgent(guest) as agent:
        run = qgactl(
            "--socket", agent.path, "exec", "--timeout-run", "0.5", "--", "ping", "-t", "x"
        )
    assert run.code == 124
    *_, target, killer = guest.sent("guest-exec")  # after the wrapper's tries
    assert target["path"] == "ping"
    assert killer["path"] == "taskkill.exe"
    assert killer["arg"][:3] == ["/F", "/T", "/PID"]


def test_polling_backs_off_from_a_millisecond_to_a_cap(qgactl):
    guest = ScriptedGuest(seconds=1.5)
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "slow")
    assert run.code == 2
    times = [t for t, r in guest.requests if r["execute"] == "guest-exec-status"]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert gaps[0] < 0.02  # a fast command's status comes at once
    assert max(gaps) < 0.25  # never a one-second poll
    assert 8 <= len(times) <= 40  # never a busy loop


def test_a_lost_exit_status_is_an_error_not_a_guess(qgactl):
    guest = ScriptedGuest(os_id="debian", lose_exit=True)
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "-t", "1", "exec", "--", "true")
    assert run.code == 125
    assert "lost" in run.stderr


def test_blocked_guest_exec_is_named_with_how_to_allow_it(qgactl):
    guest = ScriptedGuest(os_id="debian", disabled=("guest-exec",))
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "true")
    assert run.code == 125
    assert "guest-exec" in run.stderr and "block-rpcs" in run.stderr
    assert "guest-file-open" not in guest.commands()  # refused before anything was made


def test_a_blocked_osinfo_does_not_hide_the_real_error(qgactl):
    guest = ScriptedGuest(os_id="debian", disabled=("guest-exec", "guest-get-osinfo"))
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "true")
    assert run.code == 125
    assert "guest-exec " in run.stderr and "guest-get-osinfo" not in run.stderr, run.stderr
    assert "guest-file-open" not in guest.commands()


def test_under_nohup_a_hangup_leaves_the_guest_command_running(tmp_path):
    """nohup starts qgactl with SIGHUP ignored: closing the terminal must not kill CMD."""
    guest = ScriptedGuest(os_id="debian", seconds=1.5)
    with FakeAgent(guest) as agent:
        process = subprocess.Popen(
            [sys.executable, "-m", "qgactl", "--socket", agent.path, "exec", "--", "long"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        )
        give_up = time.monotonic() + 10
        while "guest-exec-status" not in guest.commands():
            assert time.monotonic() < give_up, "the command never started"
            time.sleep(0.01)
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr  # the command's own status, not 129
    (started,) = guest.sent("guest-exec")  # and no kill helper was run
    assert started["path"] == "/bin/sh" and "long" in started["arg"]


def test_a_quiet_long_command_is_streamed_with_few_agent_calls(qgactl):
    """Past LIVE_AFTER the spool files are opened by name and read on every status poll; with
    nothing to read the polls back off to LIVE_CAP, and the handles are closed at the end."""
    guest = ScriptedGuest(os_id="debian", seconds=2.5)
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "exec", "--", "quiet")
    assert run.code == 2, run.stderr
    opened = [arguments["path"] for arguments in guest.sent("guest-file-open")]
    assert sorted(path.rsplit(".", 1)[1] for path in opened) == ["err", "out"]
    assert all(arguments["mode"] == "r" for arguments in guest.sent("guest-file-open"))
    assert len(guest.sent("guest-file-close")) == 2
    reads = [t for t, r in guest.requests if r["execute"] == "guest-file-read"]
    assert reads and reads[0] - guest.requests[0][0] >= 0.4  # not before LIVE_AFTER
    gaps = [later - earlier for earlier, later in zip(reads[::2], reads[2::2])]
    assert max(gaps) >= 0.2  # backed off while quiet
    assert len(guest.requests) <= 55  # 2.5 s: about 15 polls, then 3 calls a quarter second
