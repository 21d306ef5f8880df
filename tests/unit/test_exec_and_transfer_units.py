"""The pure parts of exec and cp: exit statuses, glib's spawn errors, guest bytes on a
terminal, which members of a guest's tar archive are taken, DOMAIN:PATH parsing."""

from __future__ import annotations

import io
import tarfile

import pytest

from qgactl import guest_exec, transfer
from qgactl.commands.files import _side
from qgactl.errors import AgentCommandError, InvalidUsage, QgactlError
from qgactl.render import Terminal


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (guest_exec.ExecResult(1, 0, None), 0),
        (guest_exec.ExecResult(1, 3, None), 3),
        (guest_exec.ExecResult(1, None, 9), 137),
        (guest_exec.ExecResult(1, None, 15, timed_out=True), 124),
        (guest_exec.ExecResult(1, None, 15, cancelled_by=2), 130),
        (guest_exec.ExecResult(1, None, None), 125),  # never seen to end
    ],
)
def test_exit_status_is_shell_style(result: guest_exec.ExecResult, status: int) -> None:
    assert result.status == status


@pytest.mark.parametrize(
    ("desc", "status"),
    [
        ("Failed to execute child process “nope” (No such file or directory)", 127),
        ("Failed to execute child process “/etc/hosts” (Permission denied)", 126),
        ("Failed to execute child process “x” (Exec format error)", 126),
    ],
)
def test_glib_spawn_errors_become_127_and_126(desc: str, status: int) -> None:
    error = guest_exec._cannot_run(AgentCommandError("guest-exec", "GenericError", desc), "x")
    assert isinstance(error, guest_exec.CannotRun)
    assert error.exit_code == status


def test_other_guest_exec_errors_stay_agent_errors() -> None:
    error = AgentCommandError("guest-exec", "GenericError", "Guest agent command failed")
    assert guest_exec._cannot_run(error, "x") is error


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_guest_bytes_on_a_terminal_escape_what_drives_it_and_keep_lines() -> None:
    tty = FakeTty()
    sink = Terminal("table", stdout=tty, stderr=io.StringIO()).guest_bytes("stdout")
    sink.write(b"ok\tcol\r\n\x1b]0;title\x07 \x1b[2J")
    sink.write("é".encode()[:1])  # a character split across two chunks
    sink.write("é".encode()[1:] + b"\n\x9b")
    text = tty.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert text.startswith("ok\tcol\r\n\\x1b]0;title\\x07 \\x1b[2J")
    assert "é\n" in text


def test_guest_bytes_into_a_pipe_are_exact() -> None:
    raw = io.BytesIO()
    pipe = io.TextIOWrapper(raw)
    sink = Terminal("json", stdout=pipe, stderr=io.StringIO()).guest_bytes("stdout")
    data = bytes(range(256)) * 3
    sink.write(data)
    assert raw.getvalue() == data


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("member", "taken"),
    [
        (_member("tree"), True),
        (_member("tree/a/b"), True),
        (_member("tree/l", tarfile.SYMTYPE, "a/b"), True),
        (_member("tree/l", tarfile.SYMTYPE, "/etc/shadow"), False),
        (_member("tree/l", tarfile.SYMTYPE, "../../x"), False),
        (_member("tree/l", tarfile.SYMTYPE, "../treex/y"), False),
        (_member("/etc/passwd"), False),
        (_member("tree/../../x"), False),
        (_member("other/x"), False),
        (_member("treex/y"), False),
        (_member("tree/dev", tarfile.CHRTYPE), False),
        (_member("tree/h", tarfile.LNKTYPE, "tree/a"), False),
    ],
)
def test_only_members_inside_the_tree_are_taken(member: tarfile.TarInfo, taken: bool) -> None:
    assert transfer._safe_member(member, "tree") is taken


class _App:
    def __init__(self, socket: str | None = None) -> None:
        self.socket_path = socket


@pytest.mark.parametrize(
    ("word", "side"),
    [
        ("vm1:/etc/hosts", ("vm1", "/etc/hosts")),
        ("/tmp/a:b", (None, "/tmp/a:b")),
        ("./x", (None, "./x")),
        ("-", (None, "-")),
        ("plain", (None, "plain")),
    ],
)
def test_domain_path_or_host_path(word: str, side: tuple[str | None, str]) -> None:
    assert _side(_App(), word) == side  # type: ignore[arg-type]


def test_socket_targets_are_colon_path_only() -> None:
    assert _side(_App("/s"), ":/etc/x") == ("", "/etc/x")  # type: ignore[arg-type]
    with pytest.raises(InvalidUsage):
        _side(_App("/s"), "vm1:/etc/x")  # type: ignore[arg-type]
    with pytest.raises(InvalidUsage):
        _side(_App(), "vm1:")  # type: ignore[arg-type]


def test_max_failures_starts_no_target_once_that_many_failed() -> None:
    from qgactl import fanout

    started: list[int] = []

    def job(number: int) -> int:
        started.append(number)
        if number in (0, 2):
            raise QgactlError(f"{number} failed")
        return number

    outcomes = fanout.run_all(range(6), job, 1, max_failures=2)
    assert started == [0, 1, 2]
    assert [o.value for o in outcomes[:3]] == [None, 1, None]
    assert all(isinstance(o.error, fanout.NotStarted) for o in outcomes[3:])
    # What counts as failed is the caller's: here an odd value.
    outcomes = fanout.run_all(
        range(6), lambda n: n, 1, max_failures=1, failed=lambda o: o.value % 2
    )
    assert [o.ok for o in outcomes] == [True, True, False, False, False, False]


def test_several_targets_lines_keep_their_prefix_and_a_partial_line_waits() -> None:
    from qgactl.commands import execute

    class Printer:
        def __init__(self) -> None:
            self.written: list[tuple[int, bytes]] = []

        def write(self, index: int, data: bytes) -> None:
            self.written.append((index, data))

    printer = Printer()
    lines = execute._Lines(printer, "vm1", 1)  # type: ignore[arg-type]
    lines.write(b"one\ntw")
    lines.write(b"o\nthr")
    assert printer.written == [(1, b"vm1: one\n"), (1, b"vm1: two\n")]
    lines.write(b"ee")
    lines.close()
    assert printer.written[-1] == (1, b"vm1: three\n")
