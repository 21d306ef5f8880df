"""Jobs that outlive qgactl: a guest command started detached, its output and exit status kept
in the guest until removed.

qemu-ga forgets a process at the first guest-exec-status that reports its exit, and keeps its
captured output in its own memory: neither survives qgactl being killed, libvirtd restarting,
or a second qgactl (on another host) asking. So a job keeps everything in a directory of its
own under JOBS_DIR (root-only, in guest_exec.SPOOL_DIR), written by a wrapper in the guest:

    JOBS_DIR/<id>/cmd      the command as qgactl was given it (a JSON list, one line)
                  started  seconds since the epoch, by the guest's clock
                  pid      the wrapper's pid, also its process group and session (setsid)
                  stdout, stderr   the command's output, appended as it comes
                  status   the exit status (128+N for signal N), written via a temp + mv
                           when the command ends, so a reader never sees half of it

1. LAUNCHER (one guest-exec with capture, reaped at once) makes the directory and starts
   RUNNER through ``setsid setsid``: the first makes a group leader, so the second forks and
   its parent returns; the runner is left in a session of its own, with default signal
   dispositions (a ``&`` in a non-interactive sh would ignore SIGINT for good). It returns
   once the runner has written its pid.
2. RUNNER traps TERM/INT/HUP (the command still gets the default ones), runs the command in
   the foreground with its output in the job's files, and records its status.
3. Reading is guest-file-open/seek/read/close in chunks that fit the transport (guestfile.py),
   a handle held only for one read, so a qgactl killed mid-read leaves nothing open for long.
   A job's state (status, or whether its wrapper is alive) is one small guest-exec (PROBE)
   whose output is bounded.
4. kill (KILLER) sends TERM to the job's group, KILL after KILL_GRACE, and records 128+9 if
   the wrapper died before it could record a status.

--cwd and --user: the command given to start() is run as it is; a wrapper that changes
directory or user (exec's, when it has one) goes in front of ``argv`` by the caller.

No click, no printing: output goes to sinks, progress to the caller.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from qgactl import guestfile
from qgactl.errors import (
    AgentCommandError,
    AgentTimeout,
    ExitCode,
    InvalidUsage,
    NotFound,
    ProtocolError,
    QgactlError,
)
from qgactl.guest_exec import SPOOL_DIR, CannotRun, run_captured
from qgactl.signals import Interrupted

if TYPE_CHECKING:
    from qgactl.agent import Agent
    from qgactl.guestfile import Sink

JOBS_DIR = f"{SPOOL_DIR}/jobs"
ID_LENGTH = 8  # hex digits: 4 billion ids, and the launcher's mkdir refuses a clash
ID_PATTERN = re.compile(r"[0-9a-z]{1,32}\Z")  # a path component: no "/", no "..", no "-x"
POLL_FIRST = 0.05
POLL_CAP = 1.0  # a job that runs for hours costs one probe a second while followed
KILL_GRACE = 2.0
KILLED = 128 + 9  # recorded by kill when the wrapper itself had to be killed
MAX_LIST_BYTES = 1024 * 1024  # the probe's output: ~1.4 MB of base64, well under libvirt's 4 MiB

# $1 RUNNER, $2 job id, $3 cmd (JSON), $4 how many NAME=VALUE follow, then the command.
# Exit 3: the id is taken (mkdir refuses); qgactl picks another.
LAUNCHER = r"""(umask 077; mkdir -p JOBS_DIR) || exit 1
j=JOBS_DIR/$2
mkdir -m 700 "$j" 2>/dev/null || exit 3
printf '%s\n' "$3" >"$j/cmd" && date +%s >"$j/started" && : >"$j/stdout" && : >"$j/stderr" ||
  exit 1
runner=$1; shift 3
if command -v setsid >/dev/null 2>&1; then
  setsid setsid /bin/sh -c "$runner" qgactl-job "$j" "$@" </dev/null >/dev/null 2>&1
else
  /bin/sh -c "$runner" qgactl-job "$j" "$@" </dev/null >/dev/null 2>&1 &
fi
i=0
while [ ! -e "$j/pid" ] && [ "$i" -lt 200 ]; do
  sleep 0.05 2>/dev/null || sleep 1; i=$((i + 1))
done
[ -e "$j/pid" ] || { echo "the job's wrapper did not start" >&2; exit 1; }
""".replace("JOBS_DIR", JOBS_DIR)
# $1 the job's directory, $2 how many NAME=VALUE follow; then the command.
RUNNER = r"""trap : TERM INT HUP
j=$1; n=$2; shift 2
echo $$ >"$j/pid.tmp" && mv -f "$j/pid.tmp" "$j/pid"
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
"$@" >>"$j/stdout" 2>>"$j/stderr" </dev/null
s=$?
echo "$s" >"$j/status.tmp" && mv -f "$j/status.tmp" "$j/status"
"""
# $1 a job id, or nothing for every job. One line a job: id, started, status or "-", whether
# its wrapper is alive (1/0), then its cmd; the whole bounded by MAX_LIST_BYTES. Builtins only
# inside the loop: a fork costs milliseconds under TCG.
PROBE = r"""cd JOBS_DIR 2>/dev/null || exit 0
for j in ${1:-*}; do
  [ -d "$j" ] || continue
  s=-; t=; p=; c=; a=0
  [ -f "$j/status" ] && read -r s <"$j/status"
  [ -f "$j/started" ] && read -r t <"$j/started"
  [ -f "$j/pid" ] && read -r p <"$j/pid"
  [ -f "$j/cmd" ] && IFS= read -r c <"$j/cmd"
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && a=1
  printf '%s\t%s\t%s\t%s\t%s\n' "$j" "$t" "$s" "$a" "$c"
done | head -c MAX_LIST
""".replace("MAX_LIST", str(MAX_LIST_BYTES)).replace("JOBS_DIR", JOBS_DIR)
# $1 the job's directory. Exit 3: no such job; 4: it had already ended.
KILLER = r"""j=$1
[ -d "$j" ] || exit 3
p=$(head -c 16 "$j/pid" 2>/dev/null)
[ -n "$p" ] || exit 4
group() { kill -s "$1" -- "-$p" 2>/dev/null; }
alive() { kill -0 -- "-$p" 2>/dev/null || { [ ! -f "$j/status" ] && kill -0 "$p" 2>/dev/null; }; }
signal() { group "$1" || { [ ! -f "$j/status" ] && kill -s "$1" "$p" 2>/dev/null; }; }
alive || exit 4
settle() {
  i=0; while alive && [ "$i" -lt GRACE ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i + 1)); done
}
signal TERM; settle
alive && { signal KILL; settle; }
[ -f "$j/status" ] || { echo KILLED >"$j/status.tmp" && mv -f "$j/status.tmp" "$j/status"; }
""".replace("GRACE", str(int(KILL_GRACE / 0.05))).replace("KILLED", str(KILLED))
# $1 the job's directory, or nothing for every finished job. Exit 3: no such job; 4: running.
REMOVER = r"""finished() {
  [ -f "$1/status" ] || ! kill -0 "$(head -c 16 "$1/pid" 2>/dev/null)" 2>/dev/null
}
if [ -n "$1" ]; then
  [ -d "$1" ] || exit 3
  finished "$1" || exit 4
  rm -rf -- "$1"; exit
fi
cd JOBS_DIR 2>/dev/null || exit 0
for j in *; do [ -d "$j" ] && finished "$j" && rm -rf -- "$j" && echo "$j"; done | head -c 65536
""".replace("JOBS_DIR", JOBS_DIR)


class Job(NamedTuple):
    """One job as the guest keeps it. ``state``: running, exited (``status`` holds its exit
    status), or lost (no status, and its wrapper is gone: killed with SIGKILL from outside)."""

    id: str
    command: tuple[str, ...]
    started: int | None  # seconds since the epoch, by the guest's clock
    state: str
    status: int | None

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def to_json(self) -> dict[str, Any]:
        started = None if self.started is None else time.gmtime(self.started)
        return {
            "id": self.id,
            "command": list(self.command),
            "started": None if started is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
            "state": self.state,
            "status": self.status,
        }


def check_id(job_id: str) -> str:
    """A job id from a user: it becomes a path in the guest, so nothing but [0-9a-z]."""
    if not ID_PATTERN.match(job_id):
        raise InvalidUsage(
            f"{job_id!r} is not a job id (letters and digits only)",
            hint="qgactl job list DOMAIN shows the ids",
        )
    return job_id


def start(
    agent: Agent, argv: Sequence[str], *, env: Sequence[str] = (), shell: bool = False
) -> str:
    """Start ``argv`` as a job; returns its id once its wrapper runs. ``shell`` runs the words
    joined by spaces through /bin/sh -c. POSIX guests only."""
    if not argv:
        raise InvalidUsage("no command given", hint="qgactl exec --detach DOMAIN -- CMD [ARGS...]")
    command = ["/bin/sh", "-c", " ".join(argv)] if shell else list(argv)
    shown = json.dumps(list(argv))  # one line whatever the words hold
    for _ in range(3):  # a clash of random ids is rare; three in a row is something else
        job_id = os.urandom(ID_LENGTH // 2).hex()
        launch = ["/bin/sh", "-c", LAUNCHER, "qgactl-job", RUNNER, job_id, shown]
        status, output = _script(agent, [*launch, str(len(env)), *env, *command])
        if status == 0:
            return job_id
        if status != 3:
            raise QgactlError(f"cannot start the job in the guest: {output or status}")
    raise QgactlError(f"cannot start the job in the guest: {JOBS_DIR} refuses new ids")


def list_jobs(agent: Agent, job_id: str | None = None) -> list[Job]:
    """Every job in the guest (or the one ``job_id``), oldest first."""
    status, output = _script(agent, ["/bin/sh", "-c", PROBE, "qgactl-jobs", *_ids(job_id)])
    if status:
        raise QgactlError(f"cannot list the jobs in the guest: {output or status}")
    jobs = [job for line in output.splitlines() if (job := _parse(line)) is not None]
    return sorted(jobs, key=lambda job: (job.started or 0, job.id))


def get(agent: Agent, job_id: str) -> Job:
    found = list_jobs(agent, check_id(job_id))
    if not found:
        raise _no_such_job(job_id)
    return found[0]


def read_output(
    agent: Agent, job_id: str, stdout: Sink, stderr: Sink, offsets: tuple[int, int] = (0, 0)
) -> tuple[int, int]:
    """Copy a job's output from ``offsets`` on into the sinks; returns the new offsets."""
    return (
        _copy(agent, job_id, "stdout", offsets[0], stdout),
        _copy(agent, job_id, "stderr", offsets[1], stderr),
    )


def follow(
    agent: Agent,
    job_id: str,
    stdout: Sink | None = None,
    stderr: Sink | None = None,
    *,
    timeout: float | None = None,
    cancelled: Callable[[], int | None] = lambda: None,
) -> Job:
    """Wait for the job to end, copying its output into the sinks (when given) as it comes;
    returns the finished job. AgentTimeout after ``timeout`` seconds; a signal from
    ``cancelled`` stops the waiting (not the job): Interrupted."""
    give_up = None if timeout is None else time.monotonic() + timeout
    offsets = (0, 0)
    pause = POLL_FIRST
    while True:
        job = get(agent, job_id)  # before the read: output written before the status is seen
        if stdout is not None and stderr is not None:
            offsets = read_output(agent, job_id, stdout, stderr, offsets)
        if job.finished:
            return job
        signum = cancelled()
        if signum is not None:  # stops the waiting, not the job
            raise Interrupted(signum)
        if give_up is not None and time.monotonic() >= give_up:
            raise AgentTimeout(
                f"job {job_id} still runs after {timeout:g} s",
                hint="qgactl job kill DOMAIN ID stops it",
            )
        remaining = POLL_CAP if give_up is None else max(0.0, give_up - time.monotonic())
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, POLL_CAP)


def exit_status(job: Job) -> int:
    """The status a waiting command exits with: the job's, or 125 for a lost job."""
    if job.status is None:
        error = QgactlError(
            f"job {job.id} ended without recording an exit status (its wrapper was killed)",
            hint="qgactl job logs shows what it wrote",
        )
        error.exit_code = ExitCode.EXEC_FAILED
        raise error
    return job.status


def kill(agent: Agent, job_id: str) -> bool:
    """TERM to the job's process group, KILL after KILL_GRACE; False if it had already
    ended. The job's status is then recorded (128+15, or 128+9)."""
    status, output = _script(agent, ["/bin/sh", "-c", KILLER, "qgactl-kill", _path(job_id)])
    if status == 3:
        raise _no_such_job(job_id)
    if status not in (0, 4):
        raise QgactlError(f"cannot kill job {job_id}: {output or status}")
    return status == 0


def remove(agent: Agent, job_id: str | None) -> list[str]:
    """Remove a finished job's directory (``job_id``), or every finished job's (None);
    returns the ids removed. A running job is refused."""
    argv = ["/bin/sh", "-c", REMOVER, "qgactl-rm"]
    status, output = _script(agent, [*argv, _path(job_id)] if job_id else argv)
    if status == 3:
        raise _no_such_job(job_id or "")
    if status == 4:
        raise InvalidUsage(
            f"job {job_id} is still running", hint="qgactl job kill DOMAIN ID stops it first"
        )
    if status:
        raise QgactlError(f"cannot remove the job: {output or status}")
    return [job_id] if job_id else [line for line in output.splitlines() if ID_PATTERN.match(line)]


def _script(agent: Agent, argv: list[str]) -> tuple[int, str]:
    """One of the scripts above, through the agent's capture: its output is bounded. (A
    blocked guest-exec is the agent's own error, with its hint: no guest-info first.)"""
    try:
        return run_captured(agent, argv)
    except CannotRun as exc:  # /bin/sh: a Windows guest
        raise QgactlError(
            f"jobs need a POSIX shell in the guest ({exc.message})", hint="on Windows, use exec"
        ) from None


def _ids(job_id: str | None) -> list[str]:
    return [check_id(job_id)] if job_id else []


def _path(job_id: str) -> str:
    return f"{JOBS_DIR}/{check_id(job_id)}"


def _no_such_job(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id} in the guest", hint="qgactl job list DOMAIN shows them")


def _parse(line: str) -> Job | None:
    """One line of PROBE's output; None for anything that isn't one (guest data: untrusted)."""
    fields = line.split("\t", 4)
    if len(fields) != 5 or not ID_PATTERN.match(fields[0]):
        return None
    job_id, started, status, alive, shown = fields
    try:
        words = json.loads(shown)
        command = tuple(str(word) for word in words) if isinstance(words, list) else (shown,)
    except ValueError:
        command = (shown,)
    code = int(status) if status.isdigit() else None
    state = "exited" if code is not None else "running" if alive == "1" else "lost"
    return Job(job_id, command, int(started) if started.isdigit() else None, state, code)


def _copy(agent: Agent, job_id: str, name: str, offset: int, sink: Sink) -> int:
    """Append what the job's file ``name`` holds past ``offset`` to ``sink``; returns the new
    offset."""
    try:
        handle = agent.file_open(f"{_path(job_id)}/{name}", "r")
    except AgentCommandError as exc:
        if "No such file" in exc.desc:
            raise _no_such_job(job_id) from None
        raise
    try:
        if offset:
            reply = agent.call(
                "guest-file-seek", {"handle": handle, "offset": offset, "whence": "set"}
            )
            if not isinstance(reply, dict) or reply.get("position") != offset:
                raise ProtocolError(f"guest-file-seek: expected position {offset}, got {reply!r}")
        return offset + guestfile.read_into(agent, handle, sink)
    finally:
        guestfile.close_quietly(agent, handle)
