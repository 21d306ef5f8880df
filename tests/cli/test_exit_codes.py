"""The exit-code contract of DESIGN.md, pinned without libvirt (qgactl run as a real process).

0 ok · 1 internal · 2 usage · 3 socket not found · 4 agent unavailable · 130 interrupted (the
agent's own codes, 5 to 7, are in test_hostile_agent.py). Every error is one line on stderr,
with a hint where qgactl has one, and never a traceback unless --debug.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import fakeagent
import pytest

from qgactl import __version__


def assert_one_line_error(run, code, *, hint=True):
    assert run.code == code, (run.code, run.stderr)
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith("qgactl: ")
    if hint:
        assert "(hint: " in line and line.endswith(")")
    return line


# -- 0 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(qgactl, flag):
    run = qgactl(flag)
    assert run.code == 0
    assert run.stdout.startswith("Usage: qgactl")
    assert "Exit codes:" in run.stdout and "--socket" in run.stdout
    assert run.stderr == ""


def test_subcommand_help(qgactl):
    run = qgactl("raw", "--help")
    assert run.code == 0 and "REQUEST" in run.stdout and run.stderr == ""


def test_version(qgactl):
    run = qgactl("--version")
    assert run.code == 0
    assert run.stdout.strip() == f"qgactl, version {__version__}"
    assert run.stderr == ""


# -- 2: usage, caught before any connection (no libvirt, no socket needed) --------------------


@pytest.mark.parametrize("command", [("ping",), ("info",), ("osinfo",)])
def test_no_domain_and_no_socket(qgactl, command):
    line = assert_one_line_error(qgactl(*command), 2)
    assert "missing DOMAIN" in line and "--socket" in line


@pytest.mark.parametrize(
    "command", [("ping", "vm1"), ("info", "vm1"), ("osinfo", "vm1"), ("ping", "vm1", "vm2")]
)
def test_domain_and_socket_together(qgactl, tmp_path, command):
    run = qgactl("--socket", str(tmp_path / "never-used.sock"), *command)
    line = assert_one_line_error(run, 2)
    assert "not both" in line


@pytest.mark.parametrize(
    "request_words",
    [("{bad",), ("guest-ping", "{bad"), ('{"execute": 1}',), ("guest-ping", "[1]"), ('{"x": 1}',)],
    ids=["bad-json", "bad-arguments", "execute-not-a-string", "arguments-not-object", "no-execute"],
)
def test_bad_request_to_raw(qgactl, tmp_path, request_words):
    run = qgactl("--socket", str(tmp_path / "never-used.sock"), "raw", *request_words)
    assert_one_line_error(run, 2, hint=False)


def test_bad_json_to_raw_has_a_quoting_hint(qgactl, tmp_path):
    run = qgactl("--socket", str(tmp_path / "never-used.sock"), "raw", "{bad")
    line = assert_one_line_error(run, 2)
    assert "not valid JSON" in line


def test_bad_json_to_raw_with_a_domain_fails_before_libvirt(qgactl):
    line = assert_one_line_error(qgactl("raw", "vm1", "{bad"), 2)
    assert "not valid JSON" in line


def test_raw_with_too_many_words(qgactl, tmp_path):
    run = qgactl("--socket", str(tmp_path / "x.sock"), "raw", "guest-ping", "{}", "extra")
    assert "expected REQUEST [ARGUMENTS]" in assert_one_line_error(run, 2)


def test_raw_with_a_domain_and_no_request_says_what_it_takes(qgactl):
    line = assert_one_line_error(qgactl("raw", "vm1"), 2)
    assert "expected DOMAIN REQUEST [ARGUMENTS]" in line
    assert "qgactl raw vm1 '{" in line  # the example, not the --socket hint


# Click's own usage errors (bad option values, unknown commands, missing arguments).
CLICK_USAGE_ERRORS = [
    ("-o", "bogus", "ping"),
    ("--output", "bogus", "ping"),
    ("-t", "0", "ping"),
    ("-t", "soon", "ping"),
    ("nosuchcommand",),
    ("--no-such-option",),
    ("raw",),
]


@pytest.mark.parametrize("args", CLICK_USAGE_ERRORS, ids=" ".join)
def test_click_usage_errors_exit_2_without_traceback(qgactl, args):
    run = qgactl(*args)
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr


def test_bad_output_env_is_a_usage_error(qgactl):
    run = qgactl("ping", env={"QGACTL_OUTPUT": "bogus"})
    assert run.code == 2 and "Traceback" not in run.stderr


@pytest.mark.parametrize("args", CLICK_USAGE_ERRORS, ids=" ".join)
def test_click_usage_errors_are_one_line(qgactl, args):
    run = qgactl(*args)
    [line] = run.stderr.splitlines()
    assert "hint:" in line and "--help" in line


@pytest.mark.parametrize("value", ["nan", "inf", "1e300", "-1", "0"])
def test_unusable_timeouts_are_usage_errors(qgactl, tmp_path, value):
    run = qgactl("--socket", str(tmp_path / "x.sock"), "-t", value, "ping")
    assert run.code == 2, run.stderr


# -- 3: no socket at the path ----------------------------------------------------------------


@pytest.mark.parametrize("command", [("ping",), ("info",), ("raw", "guest-ping")])
def test_missing_socket_is_not_found(qgactl, tmp_path, command):
    path = str(tmp_path / "nothing-here.sock")
    run = qgactl("--socket", path, "-t", "1", *command)
    line = assert_one_line_error(run, 3)
    assert path in line
    assert run.seconds < 2  # no waiting: nothing will appear without --wait


def test_missing_directory_is_not_found(qgactl, tmp_path):
    run = qgactl("--socket", str(tmp_path / "no" / "such" / "dir.sock"), "ping")
    assert_one_line_error(run, 3, hint=False)


# -- 4: a socket nobody listens on -----------------------------------------------------------


def test_socket_file_left_behind_is_unavailable(qgactl, tmp_path):
    """A socket file whose server has gone (bound, closed, never listened)."""
    path = str(tmp_path / "dead.sock")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)
    assert os.path.exists(path)
    run = qgactl("--socket", path, "-t", "1", "ping")
    line = assert_one_line_error(run, 4)
    assert "refused" in line and path in line


def test_socket_bound_but_not_listening_is_unavailable(qgactl, tmp_path):
    path = str(tmp_path / "bound.sock")
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(path)  # still open, but no listen(): connections are refused
        run = qgactl("--socket", path, "-t", "1", "raw", "guest-ping")
    assert_one_line_error(run, 4)
    assert run.seconds < 2


def test_ping_wait_gives_up_with_the_last_failure(qgactl, tmp_path):
    path = str(tmp_path / "dead.sock")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)
    run = qgactl("--socket", path, "-t", "0.5", "ping", "--wait", "1")
    assert_one_line_error(run, 4)
    assert 0.9 < run.seconds < 3


# -- 1: internal errors, with and without --debug --------------------------------------------

BOOM = """
import qgactl.wire

def remaining(self):
    raise RuntimeError("boom: a bug inside qgactl")

qgactl.wire.Deadline.remaining = remaining
"""


@pytest.fixture
def buggy_env(tmp_path):
    """Make qgactl hit an unexpected exception (a stand-in for a bug) via sitecustomize."""
    (tmp_path / "sitecustomize.py").write_text(BOOM)
    return {"PYTHONPATH": str(tmp_path)}


def test_internal_error_is_one_line_without_traceback(qgactl, tmp_path, buggy_env):
    run = qgactl("--socket", str(tmp_path / "x.sock"), "ping", env=buggy_env)
    line = assert_one_line_error(run, 1)
    assert "internal error: RuntimeError: boom" in line
    assert "--debug" in line


def test_a_bug_in_one_of_several_pings_is_an_internal_error(qgactl, tmp_path):
    """`ping D1 D2` runs each target in a thread: a bug there must reach main(), not vanish
    with its thread (a missing row, exit 0)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import qgactl.transport\n"
        "def send(self, *args, **kwargs):\n"
        "    raise RuntimeError('boom: a bug inside qgactl')\n"
        "qgactl.transport.LibvirtTransport.send = send\n"
    )
    run = qgactl("-c", "test:///default", "ping", "test", "test", env={"PYTHONPATH": str(tmp_path)})
    line = assert_one_line_error(run, 1)
    assert "internal error: RuntimeError: boom" in line


def test_internal_error_with_debug_shows_the_traceback(qgactl, tmp_path, buggy_env):
    run = qgactl("--debug", "--socket", str(tmp_path / "x.sock"), "ping", env=buggy_env)
    assert run.code == 1
    assert "Traceback (most recent call last)" in run.stderr
    assert 'raise RuntimeError("boom' in run.stderr
    assert run.stderr.splitlines()[-1].startswith("qgactl: internal error: RuntimeError: boom")


def test_debug_does_not_change_the_exit_code(qgactl, tmp_path):
    run = qgactl("--debug", "--socket", str(tmp_path / "nothing.sock"), "ping")
    assert run.code == 3
    assert run.stderr.splitlines()[-1].startswith("qgactl: no socket at")


def test_a_reader_that_left_is_not_an_error(tmp_path):
    """`qgactl domains | head -0`: the pipe is closed before qgactl writes. Nothing to say."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "qgactl", "-c", "test:///default", "-o", "json", "domains"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (process.returncode, process.stderr) == (0, b"")


def test_output_that_cannot_be_written_is_an_error():
    with open("/dev/full", "w") as full:
        process = subprocess.run(
            [sys.executable, "-m", "qgactl", "-c", "test:///default", "-o", "json", "domains"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert process.returncode == 1
    assert process.stderr.startswith("qgactl: cannot write the output: No space left on device")
    assert "Traceback" not in process.stderr and len(process.stderr.splitlines()) == 1


# -- 130: interrupted ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("raw", "guest-ping"), ("ping",)])
def test_ctrl_c_exits_130_without_traceback(tmp_path, command):
    with fakeagent.FakeAgent(fakeagent.silent) as agent:
        process = subprocess.Popen(
            [sys.executable, "-m", "qgactl", "--socket", agent.path, "-t", "20", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while agent.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.connections == 1
        time.sleep(0.1)  # let it send the sync and block in recv
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=5)
        finally:
            process.kill()
        stopped = time.monotonic() - started
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr and stdout == b""
    assert stopped < 2  # Ctrl-C stops it now, not when the 20 s deadline passes


@pytest.mark.parametrize(
    "args",
    [
        ("fsfreeze", "--freeze", "--thaw"),
        ("fsfreeze", "--thaw", "--auto-thaw", "5"),
        ("fsfreeze", "--run", "true", "--freeze"),
        ("fsfreeze", "--timeout-run", "5"),
    ],
    ids=" ".join,
)
def test_fsfreeze_option_conflicts_are_usage_errors(qgactl, tmp_path, args):
    """Refused before any agent is contacted (the socket does not even exist)."""
    run = qgactl("--socket", str(tmp_path / "none.sock"), *args)
    assert run.code == 2, run.stderr
    [line] = run.stderr.splitlines()
    assert "hint:" in line
