"""shutdown, reboot, suspend, set-password and ssh-keys against scripted agents (qgactl run as
a real process), for what a real guest can't show on demand or shouldn't be made to do: an
agent that lacks or blocks a command, a guest that powers off (the channel closes) or reboots
(the agent goes away and comes back) at a known moment, a suspend. The same commands against
real guests, checked through libvirt, are tests/vm/test_control.py.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import subprocess
import sys
import time
from typing import Any

import pytest
from fakeagent import FakeAgent, Peer, sentinel
from testkeys import public_key

COMMANDS = (
    "guest-ping",
    "guest-shutdown",
    "guest-suspend-ram",
    "guest-suspend-disk",
    "guest-set-user-password",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
)
HANG_UP = b""  # an answer that closes the connection (the guest went down)
SILENCE = None  # no answer at all (success-response false)


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def error(desc: str, error_class: str = "GenericError") -> bytes:
    return _line({"error": {"class": error_class, "desc": desc}})


OK = _line({"return": {}})


class Guest:
    """A scripted qemu-ga: guest-info lists COMMANDS minus ``missing`` (``disabled`` ones
    listed as not enabled), every request is recorded, and ``answers[command]`` is the reply
    (bytes, HANG_UP or SILENCE); ``connections[n]`` replaces the whole scenario of the n-th
    connection (0-based), e.g. to hang up at once while the guest reboots."""

    def __init__(
        self,
        answers: dict[str, bytes | None] | None = None,
        *,
        missing: tuple[str, ...] = (),
        disabled: tuple[str, ...] = (),
        connections: dict[int, Any] | None = None,
    ) -> None:
        self.answers = {"guest-ping": OK, **(answers or {})}
        self.missing, self.disabled = missing, disabled
        self.connections = connections or {}
        self.requests: list[dict[str, Any]] = []
        self.count = 0

    def __call__(self, peer: Peer) -> None:
        number, self.count = self.count, self.count + 1
        if number in self.connections:
            self.connections[number](peer)
            return
        if not peer.sync():
            return
        while (request := peer.read_request()) is not None:
            self.requests.append(request)
            command = request["execute"]
            if command == "guest-sync-delimited":
                peer.send(sentinel(request["arguments"]["id"]))
            elif command == "guest-info":
                listed = [c for c in COMMANDS if c not in self.missing]
                commands = [{"name": c, "enabled": c not in self.disabled} for c in listed]
                peer.send(_line({"return": {"version": "7.2.22", "supported_commands": commands}}))
            elif command in self.missing:
                peer.send(error(f"The command {command} has not been found", "CommandNotFound"))
            else:
                answer = self.answers.get(command, OK)
                if answer == HANG_UP:
                    return
                if answer is not SILENCE:
                    peer.send(answer)

    def sent(self, command: str) -> list[dict[str, Any]]:
        return [r.get("arguments", {}) for r in self.requests if r["execute"] == command]


def hang_up(peer: Peer) -> None:
    """A connection the agent drops at once (nothing listens in the guest while it reboots)."""


def one_line_error(run, code):
    assert run.code == code, (run.code, run.stderr)
    assert run.stdout == "" and "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()
    return line


# -- shutdown, reboot, suspend ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["powerdown", "halt", "reboot"])
def test_shutdown_sends_the_mode_and_the_guest_going_away_is_success(qgactl, mode):
    guest = Guest({"guest-shutdown": HANG_UP})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "shutdown", "--mode", mode)
    assert run.code == 0, run.stderr
    assert guest.sent("guest-shutdown") == [{"mode": mode}]
    assert run.json() == {
        "target": agent.path,
        "action": mode,
        "waited": False,
        "outcome": None,
        "seconds": None,
        "wake": None,
    }


def test_shutdown_silence_is_success_after_the_timeout(qgactl):
    guest = Guest({"guest-shutdown": SILENCE})
    with FakeAgent(guest) as agent:
        run = qgactl("-t", "1", "--socket", agent.path, "shutdown")
    assert run.code == 0, run.stderr
    assert 1 <= run.seconds < 10


def test_shutdown_refused_by_the_guest_is_exit_6(qgactl):
    guest = Guest({"guest-shutdown": error("guest-shutdown failed: exit status 1")})
    with FakeAgent(guest) as agent:
        line = one_line_error(qgactl("--socket", agent.path, "shutdown"), 6)
    assert "guest-shutdown" in line and "exit status 1" in line


def test_shutdown_wait_on_a_socket_waits_for_the_channel_to_close(qgactl):
    """The guest powers off 1 s after the request: QEMU closes the chardev (a fresh connection
    is dropped, as QEMU exiting does), and only then does --wait return."""

    def powered_off_later(peer: Peer) -> None:
        time.sleep(1.0)

    guest = Guest({"guest-shutdown": HANG_UP}, connections={1: powered_off_later})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "shutdown", "--wait", "20")
    assert run.code == 0, run.stderr
    result = run.json()
    assert result["waited"] and result["outcome"] == "channel closed"
    assert 1.0 <= result["seconds"] < 10


def test_shutdown_wait_runs_out_with_exit_5(qgactl):
    def still_up(peer: Peer) -> None:
        peer.wait_gone()

    guest = Guest({"guest-shutdown": HANG_UP}, connections={1: still_up})
    with FakeAgent(guest) as agent:
        line = one_line_error(qgactl("--socket", agent.path, "shutdown", "--wait", "1"), 5)
    assert "still open" in line and "hint:" in line


def test_halt_can_not_be_waited_for(qgactl):
    guest = Guest()
    with FakeAgent(guest) as agent:
        line = one_line_error(
            qgactl("--socket", agent.path, "shutdown", "--mode", "halt", "--wait", "5"), 2
        )
    assert "--mode powerdown" in line
    assert guest.sent("guest-shutdown") == []  # refused before asking anything


def test_reboot_wait_needs_the_agent_to_go_away_and_answer_again(qgactl):
    """Connections 1-2 (pings after the request) are dropped: the guest is rebooting; from the
    third on the agent answers again."""
    guest = Guest({"guest-shutdown": HANG_UP}, connections={1: hang_up, 2: hang_up})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "reboot", "--wait", "30")
    assert run.code == 0, run.stderr
    assert guest.sent("guest-shutdown") == [{"mode": "reboot"}]
    assert run.json()["outcome"] == "answers again"
    assert guest.count >= 4  # request, two refused pings, the answer


def test_reboot_wait_when_the_guest_never_reboots(qgactl):
    guest = Guest({"guest-shutdown": SILENCE})
    with FakeAgent(guest) as agent:
        line = one_line_error(qgactl("-t", "1", "--socket", agent.path, "reboot", "--wait", "3"), 5)
    assert "the agent still answers" in line


@pytest.mark.parametrize(("mode", "wake"), [("ram", "system_wakeup"), ("disk", "powers off")])
def test_suspend_without_a_reply_is_success_and_says_how_to_wake(qgactl, mode, wake):
    guest = Guest({f"guest-suspend-{mode}": SILENCE})
    with FakeAgent(guest) as agent:
        run = qgactl("-t", "1", "--socket", agent.path, "suspend", "--mode", mode)
    assert run.code == 0, run.stderr
    assert guest.sent(f"guest-suspend-{mode}") == [{}]
    assert run.json()["action"] == f"suspend-{mode}" and wake in run.json()["wake"]


def test_suspend_the_guest_cannot_do(qgactl):
    """qemu-ga checks /sys/power/state itself and answers an error."""
    answer = error("The command guest-suspend-ram has not been found", "CommandNotFound")
    guest = Guest(missing=("guest-suspend-ram",), answers={"guest-suspend-ram": answer})
    with FakeAgent(guest) as agent:
        line = one_line_error(qgactl("--socket", agent.path, "suspend", "--mode", "ram"), 6)
    assert "guest-suspend-ram" in line


# -- feature detection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("ssh-keys", "root"), "guest-ssh-get-authorized-keys"),
        (("set-password", "root"), "guest-set-user-password"),
        (("shutdown",), "guest-shutdown"),
    ],
)
def test_a_command_the_agent_lacks_is_named_with_the_version_that_added_it(qgactl, args, command):
    guest = Guest(missing=(command,))
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, *args, stdin=b"secret\n")
    line = one_line_error(run, 6)
    assert command in line and "has not been found" in line
    if command != "guest-shutdown":  # 0.15.0: every agent has it, no version to name
        assert "added in qemu-ga 5.2" in line or "added in qemu-ga 2.3" in line
    assert guest.sent(command) == []  # detected from guest-info, never sent


def test_a_blocked_command_says_how_to_allow_it(qgactl):
    guest = Guest(disabled=("guest-ssh-add-authorized-keys",))
    with FakeAgent(guest) as agent:
        run = qgactl(
            "--socket", agent.path, "ssh-keys", "root", "--add", "-", stdin=public_key().encode()
        )
    line = one_line_error(run, 6)
    assert "guest-ssh-add-authorized-keys" in line and "block-rpcs" in line
    assert guest.sent("guest-ssh-add-authorized-keys") == []


def test_auto_falls_back_to_the_dedicated_socket_when_libvirt_is_in_error():
    """libvirt's error state (code 86, "not available due to an error") is AgentUnavailable:
    AutoTransport asks the dedicated socket and keeps libvirt's error for `doctor`."""
    from qgactl.agent import Agent
    from qgactl.errors import AgentUnavailable
    from qgactl.transport import AutoTransport

    class BrokenLibvirt:
        kind, target, domain = "libvirt", "vm1", None

        def send(self, *args: Any) -> None:
            raise AgentUnavailable("in error", agent_state="error")

        def close(self) -> None:
            pass

    guest = Guest()
    with FakeAgent(guest) as fake:
        transport = AutoTransport(BrokenLibvirt(), lambda: fake.path)  # type: ignore[arg-type]
        agent = Agent(transport, 5)
        agent.ping()
        agent.close()
    assert transport.kind == "socket" and transport.target == fake.path
    assert transport.fallback_reason is not None
    assert transport.fallback_reason.data["agent_state"] == "error"
    assert [r["execute"] for r in guest.requests] == ["guest-ping"]


# -- set-password ------------------------------------------------------------------------------

PASSWORD = "s3cr3t \u00e9 p4ss"


def test_set_password_from_stdin_never_shows_in_the_trace(qgactl):
    guest = Guest()
    with FakeAgent(guest) as agent:
        run = qgactl(
            "--debug",
            "--socket",
            agent.path,
            "set-password",
            "root",
            stdin=PASSWORD.encode() + b"\n",
        )
    assert run.code == 0, run.stderr
    [arguments] = guest.sent("guest-set-user-password")
    assert arguments == {
        "username": "root",
        "password": base64.b64encode(PASSWORD.encode()).decode(),
        "crypted": False,
    }
    sent = [line for line in run.stderr.splitlines() if line.startswith("--> ")]
    [traced] = [line for line in sent if '"guest-set-user-password"' in line]
    assert '"password":"<redacted>"' in traced
    assert PASSWORD not in run.stderr and arguments["password"] not in run.stderr
    assert PASSWORD not in run.stdout and arguments["password"] not in run.stdout


def test_set_password_crypted_sends_the_hash_as_given(qgactl):
    crypted = "$6$salt$" + "x" * 86
    guest = Guest()
    with FakeAgent(guest) as agent:
        run = qgactl(
            "--socket", agent.path, "set-password", "--crypted", "root", stdin=crypted.encode()
        )
    assert run.code == 0, run.stderr
    [arguments] = guest.sent("guest-set-user-password")
    assert base64.b64decode(arguments["password"]).decode() == crypted and arguments["crypted"]


@pytest.mark.parametrize("stdin", [b"", b"\n", b"one\ntwo\n"])
def test_set_password_refuses_empty_or_several_lines(qgactl, stdin):
    guest = Guest()
    with FakeAgent(guest) as agent:
        one_line_error(qgactl("--socket", agent.path, "set-password", "root", stdin=stdin), 2)
    assert guest.sent("guest-set-user-password") == []


def test_set_password_unknown_user_is_the_guests_error(qgactl):
    answer = error("child process has failed to set user password")
    guest = Guest({"guest-set-user-password": answer})
    with FakeAgent(guest) as agent:
        line = one_line_error(
            qgactl("--socket", agent.path, "set-password", "nosuch", stdin=b"pw\n"), 6
        )
    assert "failed to set user password" in line


def test_the_password_is_never_in_argv(tmp_path):
    """While qgactl waits for stdin, its command line (what `ps` shows) has no password."""
    guest = Guest()
    with FakeAgent(guest) as agent:
        process = subprocess.Popen(
            [sys.executable, "-m", "qgactl", "--socket", agent.path, "set-password", "root"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.3)
        with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
        process.communicate(PASSWORD.encode() + b"\n", timeout=30)
    assert b"set-password" in argv and not any(PASSWORD.encode() in word for word in argv)
    assert process.returncode == 0
    assert guest.sent("guest-set-user-password")


def _read_until(fd: int, text: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"never saw {text!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_set_password_on_a_terminal_asks_twice_without_echo():
    """A real pseudo-terminal: the prompt comes twice, a mismatch asks again, the typed
    password is never echoed."""
    guest = Guest()
    with FakeAgent(guest) as agent:
        pid, fd = pty.fork()
        if pid == 0:  # the child: qgactl on the terminal
            os.execv(sys.executable, [sys.executable, "-m", "qgactl", "--socket", agent.path,
                                      "set-password", "root"])  # fmt: skip
        try:
            seen = _read_until(fd, b"new password for root: ")
            os.write(fd, b"first\n")
            seen += _read_until(fd, b"Repeat for confirmation: ")
            os.write(fd, b"other\n")  # a mismatch: asked again
            seen += _read_until(fd, b"new password for root: ")
            os.write(fd, PASSWORD.encode() + b"\n")
            seen += _read_until(fd, b"Repeat for confirmation: ")
            os.write(fd, PASSWORD.encode() + b"\n")
            seen += _read_until(fd, b"password of root set")
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"do not match" in seen
    assert b"first" not in seen and PASSWORD.encode() not in seen  # hidden input
    [arguments] = guest.sent("guest-set-user-password")
    assert base64.b64decode(arguments["password"]).decode() == PASSWORD


# -- ssh-keys ----------------------------------------------------------------------------------


def keys_reply(*keys: str) -> bytes:
    return _line({"return": {"keys": list(keys)}})


def test_ssh_keys_lists_them(qgactl):
    key = public_key()
    guest = Guest({"guest-ssh-get-authorized-keys": keys_reply(key)})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "ssh-keys", "root")
    assert run.code == 0, run.stderr
    assert run.json() == {"user": "root", "keys": [key]}
    assert guest.sent("guest-ssh-get-authorized-keys") == [{"username": "root"}]


def test_no_authorized_keys_file_is_no_keys(qgactl):
    answer = error("failed to read '/root/.ssh/authorized_keys': Failed to open file "
                   "“/root/.ssh/authorized_keys”: No such file or directory")  # fmt: skip
    guest = Guest({"guest-ssh-get-authorized-keys": answer})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "ssh-keys", "root")
    assert run.code == 0, run.stderr
    assert run.json() == {"user": "root", "keys": []}


def test_unknown_user_is_exit_6(qgactl):
    answer = error("failed to lookup user 'nosuch': Success")
    guest = Guest({"guest-ssh-get-authorized-keys": answer})
    with FakeAgent(guest) as agent:
        line = one_line_error(qgactl("--socket", agent.path, "ssh-keys", "nosuch"), 6)
    assert "failed to lookup user 'nosuch'" in line


@pytest.mark.parametrize(
    ("option", "command", "reset"),
    [
        ("--add", "guest-ssh-add-authorized-keys", False),
        ("--reset", "guest-ssh-add-authorized-keys", True),
        ("--remove", "guest-ssh-remove-authorized-keys", None),
    ],
)
def test_ssh_keys_changes_from_a_file(qgactl, tmp_path, option, command, reset):
    keys = [public_key(), public_key("ssh-rsa", comment="second")]
    key_file = tmp_path / "keys.pub"
    key_file.write_text("# two keys\n" + "\n".join(keys) + "\n")
    guest = Guest({"guest-ssh-get-authorized-keys": keys_reply(keys[0])})
    with FakeAgent(guest) as agent:
        run = qgactl("--socket", agent.path, "ssh-keys", "root", option, str(key_file))
    assert run.code == 0, run.stderr
    expected: dict[str, Any] = {"username": "root", "keys": keys}
    if reset is not None:
        expected["reset"] = reset
    assert guest.sent(command) == [expected]
    assert run.json() == {"user": "root", "keys": [keys[0]]}  # listed after the change


def test_ssh_keys_refuses_a_file_that_is_not_keys(qgactl, tmp_path):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n")
    guest = Guest()
    with FakeAgent(guest) as agent:
        line = one_line_error(
            qgactl("--socket", agent.path, "ssh-keys", "root", "--add", str(key_file)), 2
        )
    assert "line 1: not an OpenSSH public key" in line
    assert guest.sent("guest-ssh-add-authorized-keys") == []


def test_ssh_keys_one_change_at_a_time(qgactl, tmp_path):
    run = qgactl(
        "--socket", str(tmp_path / "none"), "ssh-keys", "root", "--add", "-", "--remove", "-"
    )
    assert "one of --add, --remove and --reset" in one_line_error(run, 2)


@pytest.mark.parametrize("args", [("ssh-keys",), ("set-password",), ("ssh-keys", "vm1", "root")])
def test_user_and_domain_words(qgactl, tmp_path, args):
    """With --socket the only word is USER; without it, DOMAIN USER."""
    run = qgactl("--socket", str(tmp_path / "none"), *args)
    assert "expected USER" in one_line_error(run, 2)
    run = qgactl("-c", "test:///default", args[0], "test")
    assert "expected DOMAIN USER" in one_line_error(run, 2)
