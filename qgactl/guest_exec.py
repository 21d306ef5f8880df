"""Run a command in the guest through the agent: its output live, at any size, and its status.

qemu-ga's own capture (guest-exec "capture-output") keeps a process's output in the agent and
hands it over in ONE guest-exec-status reply, up to 16 MiB a stream, only once it has ended.
Through libvirt a reply over ~4 MiB fails and one over 10 MiB breaks the domain's agent
(PROTOCOL.md, "Limits"), and the status call reaps the process, so a lost reply loses the
result. So on guests with a POSIX shell (``wrapped`` mode) the output goes to spool files:

1. guest-exec (with capture) runs WRAPPER under /bin/sh: it checks --cwd, --user and that
   the command exists (a refusal is one marked line on its stderr), then runs the command
   with stdout and stderr in two spool files of a root-only directory (SPOOL_DIR), stdin
   from /dev/null or a third (-i, written by qgactl first), and QGACTL_EXEC_ID in its
   environment. Every process the command starts inherits that variable, also one that
   leaves the process group or outlives its parent, so a kill finds them all in /proc
   (POSIX_KILL). A process group (setsid) would reach fewer, and its exec cost a short
   command a fifth of its time.
2. guest-exec-status is polled with a backoff from 2 ms up to POLL_CAP, each pause
   POLL_SHARE of the time run so far. A command still running after LIVE_AFTER is streamed:
   qgactl opens the spool files by name and reads what is there on every poll, at once again
   while a read fills a whole chunk.
3. At its end the wrapper hands output of at most SMALL_OUTPUT bytes back through its own
   captured stdout and stderr (one reply, well under the libvirt cliffs) and removes the
   spool files: a short command costs guest-exec and a few status polls, nothing else (the
   old way cost guest-info, three file calls per spool file and the same polls). Larger
   output stays in the spool files: qgactl opens them, starts an rm of their names, and
   reads them in chunks that fit the transport (guestfile.py). A lost status reply is an
   error (exit 125) as it always was, and qgactl still removes the spool files.

Guests without /bin/sh (Windows: guest-get-osinfo, asked when the wrapper can't start) use
the agent's capture (``capture`` mode): output is limited to 16 MiB a stream by qemu-ga
(GUEST_EXEC_MAX_OUTPUT), and stdin to what fits in one request; no live output.

A command that runs past ``timeout_run``, or that the caller cancels (a signal), is killed in
the guest: SIGTERM to it and all it started, SIGKILL to what is left after KILL_GRACE (or at
once after the wrapper ends: a child that ignores SIGTERM outlives it), then reaped, and its
spool files removed. Nothing is left behind: not the process, not a spool file, not an open handle.

No click, no printing: the caller gives sinks for stdout and stderr and a ``cancelled`` check.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Callable, NamedTuple

from qgactl import guestfile
from qgactl.errors import (
    AgentCommandError,
    AgentTimeout,
    ExitCode,
    InvalidUsage,
    ProtocolError,
    QgactlError,
)

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.guestfile import Sink
    from qgactl.replies import ExecStatus

SPOOL_DIR = "/run/qgactl"  # made 0700 on first use; only root can create names in /run
POLL_FIRST = 0.002
# Each pause is this share of the time the command has run so far, so a short command is seen
# to end soon after it does (within a quarter of its run time; a pause growing 1.5x a poll
# could be half of it: a 0.2 s command seen ~65 ms late), for ~10 more polls in its first
# half second.
POLL_SHARE = 0.25
POLL_CAP = 0.1  # ten status calls a second at most for a long-running command
POLL_GROWTH = 1.5  # a streamed command's pause, after its output stops
LIVE_AFTER = 0.5  # a command running longer is streamed; a shorter one costs no file call
LIVE_CAP = 0.25  # a quiet streamed command: a status and two reads four times a second
SMALL_OUTPUT = 1024 * 1024  # handed back in the status reply: 1.4 MB of base64, under 4 MiB
KILL_GRACE = 2.0  # between SIGTERM and SIGKILL
TIMED_OUT = 124  # like timeout(1)
NOT_FOUND = 127
CANNOT_EXECUTE = 126
# Stdin in one guest-exec request: libvirt drops requests over ~256 KiB of base64.
CAPTURE_STDIN_LIMIT = 160 * 1024

CAPTURE_COMMANDS = ("guest-exec", "guest-exec-status")

# $1 spool base ($1.out, $1.err, $1.in), $2 SMALL_OUTPUT, $3 stdin ("/dev/null" or $1.in),
# $4 --cwd, $5 --user ("" for none), $6 how many NAME=VALUE follow; then the command.
# The wrapper's own last line on its stderr says how it ended: "$1 refused STATUS MESSAGE",
# "$1 spooled STATUS" (output left in the spool files) or "$1 exit STATUS"; no command can
# print that by chance, it does not know $1. --user: runuser (util-linux) when the guest has it,
# else su (busybox, shadow); a uid is looked up in /etc/passwd (busybox id takes names only).
WRAPPER = r"""b=$1 small=$2 in=$3 cwd=$4 user=$5 n=$6
shift 6
exec 3>&2 2>/dev/null  # fd 3: the wrapper's own words; sh's are nobody's
fail() { rm -f -- "$b.in"; printf '%s refused %s %s\n' "$b" "$1" "$2" >&3; exit "$1"; }
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
export QGACTL_EXEC_ID="${b##*/}"
if [ -n "$cwd" ]; then
  cd -- "$cwd" || fail 125 "--cwd $cwd: no such directory in the guest"
fi
case $1 in
*/*) [ -e "$1" ] || fail 127 "$1: not found in the guest"
     [ -f "$1" ] && [ -x "$1" ] || fail 126 "$1: cannot execute in the guest: Permission denied" ;;
*) command -v -- "$1" >/dev/null 2>&1 || fail 127 "$1: command not found in the guest" ;;
esac
if [ -n "$user" ]; then
  case $user in
  *[!0-9]*) id -u -- "$user" >/dev/null 2>&1 || fail 125 "--user $user: no such user in the guest"
     ;;
  *) name=$(awk -F: -v u="$user" '$3 == u { print $1; exit }' /etc/passwd)
     [ -n "$name" ] || fail 125 "--user $user: no such uid in the guest's /etc/passwd"
     user=$name ;;
  esac
  if command -v runuser >/dev/null 2>&1; then set -- runuser -u "$user" -- "$@"
  else set -- su -s /bin/sh "$user" -c 'exec "$0" "$@"' "$@"; fi
fi
[ -d "${b%/*}" ] || mkdir -p -m 700 -- "${b%/*}" || fail 125 "cannot make ${b%/*} in the guest"
# Redirected in the child: ash prints "Killed" to a stderr redirected in the parent.
(exec "$@" >"$b.out" 2>"$b.err" <"$in" 3>&-)
status=$?
if [ -s "$b.out" ] || [ -s "$b.err" ]; then
  set -- $(wc -c -- "$b.out" "$b.err")
  if [ "$5" -gt "$small" ]; then
    printf '%s spooled %s\n' "$b" "$status" >&3; exit "$status"
  fi
  # head, not cat: a child the command left behind may still be writing
  head -c "$small" -- "$b.out"; head -c "$small" -- "$b.err" >&3
fi
# The status in the last line, so that rm can replace the shell (a fork fewer).
printf '%s exit %s\n' "$b" "$status" >&3
exec rm -f -- "$b.out" "$b.err" "$b.in"
"""
# $1 the signal, $2 a pid ("" once it is reaped: the guest may have given it to another
# process), $3 the exec id ("" for none): every process with QGACTL_EXEC_ID=$3 in its
# environment, then the pid. grep -z: busybox's grep stops a line at a NUL without it.
POSIX_KILL = r"""if [ -n "$3" ]; then
  for f in $(grep -lzxF -e "QGACTL_EXEC_ID=$3" /proc/[0-9]*/environ 2>/dev/null); do
    f=${f#/proc/}; kill -s "$1" -- "${f%/environ}" 2>/dev/null
  done
fi
[ -z "$2" ] || kill -s "$1" -- "$2" 2>/dev/null; :"""


class ExecResult(NamedTuple):
    """How a guest command ended. ``status`` is the shell-style exit status qgactl exits
    with: the exit code, 128+N for a signal N, 124 when killed after ``timeout_run``."""

    pid: int
    exit_code: int | None
    signal: int | None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    cancelled_by: int | None = None  # the caller's signal that stopped it

    @property
    def status(self) -> int:
        if self.timed_out:
            return TIMED_OUT
        if self.cancelled_by is not None:
            return 128 + self.cancelled_by
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else int(ExitCode.EXEC_FAILED)


class CannotRun(QgactlError):
    """The guest could not start the command: not found (127) or not executable (126)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status  # type: ignore[assignment]


def is_windows(agent: Agent) -> bool:
    """Whether the guest is Windows (no /bin/sh), by guest-get-osinfo's id. An agent that
    can't say (guest-get-osinfo blocked, or older than 2.10) is taken for POSIX."""
    try:
        return agent.osinfo().id == "mswindows"
    except AgentCommandError:
        return False


def run(
    agent: Agent,
    argv: Sequence[str],
    *,
    stdout: Sink,
    stderr: Sink,
    stdin: IO[bytes] | None = None,
    env: Sequence[str] = (),
    shell: bool = False,
    cwd: str | None = None,
    user: str | None = None,
    timeout_run: float | None = None,
    cancelled: Callable[[], int | None] = lambda: None,
) -> ExecResult:
    """Run ``argv`` in the guest; its output goes to ``stdout`` and ``stderr`` byte for byte,
    as it is produced (a command running past LIVE_AFTER is streamed).

    ``stdin`` is sent to the command (read to its end first: the agent has no streaming);
    without it the command's stdin is empty. ``env`` adds NAME=VALUE pairs. ``shell`` runs
    ``argv`` joined by spaces through the guest's shell. ``cwd`` and ``user`` (a name or a
    uid) are where and as whom it runs (POSIX guests only). ``cancelled`` is polled while the
    command runs; a signal number from it stops the command.

    The guest is taken for POSIX until the wrapper can't start: guest-get-osinfo is asked
    only then (Windows), one agent call fewer on every other exec.
    """
    if not argv:
        raise InvalidUsage("no command given", hint="qgactl exec DOMAIN -- CMD [ARGS...]")

    def job(posix: bool) -> _Job:
        command = list(argv)
        if shell:
            command = [*(("/bin/sh", "-c") if posix else ("cmd.exe", "/c")), " ".join(argv)]
        return _Job(command, stdout, stderr, stdin, env, timeout_run, cancelled, cwd, user)

    try:
        return _Wrapped(agent, posix=True).run(job(posix=True))
    except _NotPosix:
        if cwd is not None or user is not None:
            raise InvalidUsage(
                "--cwd and --user are not supported on Windows guests",
                hint="cd or runas inside the command: qgactl exec -s DOMAIN -- 'cd C:\\dir && ...'",
            ) from None
        agent.require(*CAPTURE_COMMANDS)
        return _Captured(agent, posix=False).run(job(posix=False))


class _NotPosix(Exception):
    """Raised by _Wrapped before it has made anything: a Windows guest, capture instead."""


def run_captured(agent: Agent, argv: Sequence[str]) -> tuple[int, str]:
    """One of qgactl's own helper commands (mkdir, mv, stat) whose output is a few bytes:
    the agent's capture, no spool. Returns (status, stdout, or stderr if it failed)."""
    import io

    out, err = io.BytesIO(), io.BytesIO()
    result = _Captured(agent, posix=True).run(_Job(list(argv), out, err))
    text = (err if result.status else out).getvalue().decode(errors="replace").strip()
    return result.status, text


class _Job(NamedTuple):
    """One command to run, as run() was given it."""

    argv: list[str]
    stdout: Sink
    stderr: Sink
    stdin: IO[bytes] | None = None
    env: Sequence[str] = ()
    timeout_run: float | None = None
    cancelled: Callable[[], int | None] = lambda: None
    cwd: str | None = None
    user: str | None = None


class _Runner:
    """What both modes share: start, poll with a backoff, kill and reap."""

    def __init__(self, agent: Agent, posix: bool) -> None:
        self.agent = agent
        self.posix = posix
        self.exec_id = ""  # WRAPPER's QGACTL_EXEC_ID: a kill reaches all the command started

    def _start(self, path: str, args: list[str], **kwargs: object) -> int:
        try:
            return self.agent.exec_start(path, args, **kwargs)  # type: ignore[arg-type]
        except AgentCommandError as exc:
            raise _cannot_run(exc, path) from None

    def _wait(
        self, pid: int, job: _Job, live: Callable[[], bool] | None = None
    ) -> tuple[ExecStatus | None, bool, int | None]:
        """Poll until the process exits: (its status, timed out?, cancelled by). A timeout or
        a cancel kills it first; the status is then the one of the killed process. ``live``,
        called on every poll once the command has run LIVE_AFTER, moves its output so far
        and says whether there was any: output brings the next poll back to at once."""
        timeout_run, cancelled = job.timeout_run, job.cancelled
        started = time.monotonic()
        deadline = None if timeout_run is None else started + timeout_run
        pause = POLL_FIRST
        while True:
            status = self._status(pid)
            if status.exited:
                return status, False, None
            signum = cancelled()
            timed_out = deadline is not None and time.monotonic() >= deadline
            if signum is not None or timed_out:
                return self._kill(pid), timed_out, signum
            elapsed = time.monotonic() - started
            if live is not None and elapsed >= LIVE_AFTER:
                if live():
                    pause = POLL_FIRST
                    continue
                pause = min(pause * POLL_GROWTH, LIVE_CAP)
            else:
                pause = min(max(POLL_FIRST, elapsed * POLL_SHARE), POLL_CAP)
            time.sleep(
                pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic()))
            )

    def _status(self, pid: int) -> ExecStatus:
        """guest-exec-status, retried once after a timeout: it is idempotent until it reports
        the exit. If the lost reply was the one with the exit, the agent has forgotten the
        process: that is an error, never a guess."""
        try:
            return self.agent.exec_status(pid)
        except AgentTimeout:
            try:
                return self.agent.exec_status(pid)
            except AgentCommandError as exc:
                raise ProtocolError(
                    f"guest-exec-status: the reply with the exit status of pid {pid} was lost "
                    f"({exc.desc})",
                    hint="the agent was too slow to answer; a longer -t/--timeout helps",
                ) from None

    def _kill(self, pid: int) -> ExecStatus | None:
        """SIGTERM, KILL_GRACE, SIGKILL; returns the reaped status (None if never seen). The
        SIGKILL goes out even when SIGTERM ended the process: what it started may ignore
        SIGTERM and outlive it."""
        self._send_signal("TERM", pid)
        status = self._reaped(pid, KILL_GRACE)
        self._send_signal("KILL", None if status else pid)
        return status or self._reaped(pid, KILL_GRACE * 5)

    def _reaped(self, pid: int, within: float) -> ExecStatus | None:
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            status = self.agent.exec_status(pid)
            if status.exited:
                return status
            time.sleep(0.05)
        return None

    def _send_signal(self, signame: str, pid: int | None) -> None:
        """``signame`` to ``pid`` (None: reaped already) and to all the command started."""
        if pid is None and not self.exec_id:
            return  # reaped, and nothing else to reach
        if self.posix:
            argv = ["/bin/sh", "-c", POSIX_KILL, "qgactl-kill", signame]
            argv += [str(pid or ""), self.exec_id]  # $2 and $3
        else:
            argv = ["taskkill.exe", "/F", "/T", "/PID", str(pid)]
        killer = self._start(argv[0], argv[1:], capture=True)
        give_up = time.monotonic() + KILL_GRACE
        while time.monotonic() < give_up:  # reap the killer too: the agent keeps its status
            if self.agent.exec_status(killer).exited:
                return
            time.sleep(0.01)


class _Wrapped(_Runner):
    """POSIX guests: WRAPPER runs the command; small output comes back in the status reply,
    live or large output through the spool files, so no reply is ever larger than a chunk."""

    def run(self, job: _Job) -> ExecResult:
        self.exec_id = os.urandom(16).hex()  # not secrets: it imports hmac (6 ms)
        base = f"{SPOOL_DIR}/{self.exec_id}"
        spools = _Spools(self.agent, base, (job.stdout, job.stderr))
        stdin_path = "/dev/null"
        try:
            if job.stdin is not None:
                stdin_path = f"{base}.in"
                self._write_stdin(stdin_path, job.stdin, spools)
            pid = self._start_wrapper(job, base, stdin_path)
            spools.remove = True  # until the wrapper says it removed them
            status, timed_out, signum = self._wait(pid, job, spools.pump)
            if status is None or status.signal is not None or timed_out or signum is not None:
                # Killed: the wrapper never handed anything back. A timeout still shows
                # what came; a cancel wants out now.
                if signum is None:
                    spools.pump()
                return _result(pid, status, timed_out, signum)
            how, code, err = _ending(status, base)
            if how == "refused":
                raise CannotRun(err.decode(errors="replace").strip(), code)
            spools.finish(status.out_data, err, spooled=how == "spooled")
            return ExecResult(pid, code, None)
        except CannotRun:  # the wrapper refused, and removed what there was
            spools.remove = False
            raise
        finally:
            spools.close()

    def _start_wrapper(self, job: _Job, base: str, stdin_path: str) -> int:
        """guest-exec of /bin/sh with WRAPPER (none there: not POSIX)."""
        argv = [
            "-c", WRAPPER, "qgactl", base, str(SMALL_OUTPUT), stdin_path,
            job.cwd or "", job.user or "", str(len(job.env)), *job.env, *job.argv,
        ]  # fmt: skip
        try:
            return self.agent.exec_start("/bin/sh", argv, capture=True)
        except AgentCommandError as exc:
            if "No such file" not in exc.desc:
                raise
        if is_windows(self.agent):
            raise _NotPosix
        raise QgactlError("the guest has no /bin/sh: qgactl can't run commands there")

    def _write_stdin(self, path: str, source: IO[bytes], spools: _Spools) -> None:
        """-i: qgactl's stdin into a spool file first (the agent can't stream stdin)."""
        try:
            handle = self.agent.file_open(path, "w")
        except AgentCommandError as exc:
            if is_windows(self.agent):  # no /run there (or its file commands blocked)
                raise _NotPosix from None
            if "No such file or directory" not in exc.desc:
                raise
            status, output = run_captured(self.agent, ["mkdir", "-p", "-m", "700", SPOOL_DIR])
            if status:
                raise QgactlError(
                    f"cannot make the spool directory {SPOOL_DIR} in the guest: {output}"
                ) from None
            handle = self.agent.file_open(path, "w")
        spools.remove = True
        try:
            guestfile.write_from(self.agent, handle, source)
        finally:
            guestfile.close_quietly(self.agent, handle)


class _Spools:
    """The command's two spool files, read by name while it runs (opened on the first poll
    after LIVE_AFTER) and after it ends when its output was too large to hand back."""

    def __init__(self, agent: Agent, base: str, sinks: tuple[Sink, Sink]) -> None:
        self.agent = agent
        self.base = base
        self.paths = (f"{base}.out", f"{base}.err")
        self.sinks = sinks
        self.handles: list[int | None] = [None, None]
        self.moved = [0, 0]  # bytes of each stream already given to its sink
        self.remove = False  # whether spool files may be left for qgactl to remove
        self.remover: int | None = None  # the pid of an rm started early, reaped at close

    def pump(self) -> bool:
        """Move what the command has written so far (all of it once it has ended); whether
        there was anything."""
        moved = False
        for index in (0, 1):
            if self.handles[index] is None:
                self.handles[index] = self._open(index)
            if self.handles[index] is not None:
                moved = self._read(index) or moved
        return moved

    def finish(self, out: bytes, err: bytes, spooled: bool) -> None:
        """The command ended on its own: the rest of its output from the wrapper's reply, or
        from the files when the wrapper left them (``spooled``)."""
        if spooled:
            for index in (0, 1):
                self.handles[index] = self.handles[index] or self._open(index)
            # The names go while the handles read on: rm's time hides behind the reads.
            self.remover = self.agent.exec_start("rm", ["-f", *self.paths, f"{self.base}.in"])
            self.remove = False
            self.pump()
            return
        self.remove = False  # the wrapper did
        for index, data in enumerate((out, err)):
            if len(data) > self.moved[index]:
                self.sinks[index].write(data[self.moved[index] :])

    def close(self) -> None:
        for handle in self.handles:
            if handle is not None:
                guestfile.close_quietly(self.agent, handle)
        self.handles = [None, None]
        with contextlib.suppress(QgactlError):
            if self.remove:
                run_captured(self.agent, ["rm", "-f", *self.paths, f"{self.base}.in"])
            give_up = time.monotonic() + KILL_GRACE
            while self.remover is not None and time.monotonic() < give_up:
                if self.agent.exec_status(self.remover).exited:  # reaped: the agent forgets it
                    break
                time.sleep(0.01)

    def _open(self, index: int) -> int | None:
        """A handle, or None while the file is not there (not made yet, or already handed
        back and removed by the wrapper)."""
        try:
            return self.agent.file_open(self.paths[index], "r")
        except AgentCommandError as exc:
            if "No such file" in exc.desc:
                return None
            raise

    def _read(self, index: int) -> bool:
        """Read from the handle's position to what is the end for now (a short chunk);
        again at once while a chunk comes back full."""
        handle = self.handles[index]
        assert handle is not None
        size, _ = guestfile.chunk_sizes(self.agent)
        moved = False
        while True:
            chunk = self.agent.file_read(handle, size)
            if chunk.data:
                self.sinks[index].write(chunk.data)
                self.moved[index] += len(chunk.data)
                moved = True
            if len(chunk.data) < size:
                return moved


class _Captured(_Runner):
    """The agent's own capture: Windows guests, and qgactl's small helper commands."""

    def run(self, job: _Job) -> ExecResult:
        data = None
        if job.stdin is not None:
            data = job.stdin.read(CAPTURE_STDIN_LIMIT + 1)
            if len(data) > CAPTURE_STDIN_LIMIT:
                raise InvalidUsage(
                    f"stdin is limited to {CAPTURE_STDIN_LIMIT // 1024} KiB on this guest "
                    "(no /bin/sh: qgactl can't spool it)",
                    hint="copy the data in first with qgactl cp, then run the command on it",
                )
        argv, env = job.argv, list(job.env) or None
        pid = self._start(argv[0], argv[1:], env=env, input_data=data, capture=True)
        status, timed_out, signum = self._wait(pid, job)
        if status is not None and signum is None:
            job.stdout.write(status.out_data)
            job.stderr.write(status.err_data)
        return _result(pid, status, timed_out, signum)


def _ending(status: ExecStatus, base: str) -> tuple[str, int, bytes]:
    """How the wrapper ended, from its last line on stderr: ("exit" | "spooled" | "refused",
    the status, the command's stderr before that line or the refusal's message). A wrapper
    that ended without that line gives its own exit code."""
    marker = base.encode() + b" "
    at = status.err_data.rfind(marker)
    if at < 0:
        return "exit", status.exit_code or 0, status.err_data
    words = status.err_data[at + len(marker) :].split(b" ", 2)
    number = words[1].strip() if len(words) > 1 else b""
    code = int(number) if number.isdigit() else int(ExitCode.EXEC_FAILED)
    if words[0] == b"refused":
        return "refused", code, words[2] if len(words) > 2 else b""
    return words[0].decode(errors="replace"), code, status.err_data[:at]


def _result(pid: int, status: ExecStatus | None, timed_out: bool, signum: int | None) -> ExecResult:
    if status is None:
        return ExecResult(pid, None, None, timed_out=timed_out, cancelled_by=signum)
    return ExecResult(
        pid,
        status.exit_code,
        status.signal,
        status.out_truncated,
        status.err_truncated,
        timed_out,
        signum,
    )


def _cannot_run(exc: AgentCommandError, path: str) -> QgactlError:
    """guest-exec's refusal to start ``path`` (glib's spawn error) as 127 or 126."""
    if "No such file" in exc.desc:
        return CannotRun(f"{path}: not found in the guest ({exc.desc})", NOT_FOUND)
    if "ermission denied" in exc.desc or "Exec format" in exc.desc:
        return CannotRun(f"{path}: cannot execute in the guest ({exc.desc})", CANNOT_EXECUTE)
    return exc
