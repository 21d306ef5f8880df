"""Jobs that outlive qgactl (exec --detach, qgactl job ...) on real guests, both transports.

What a job left in the guest (its directory, its processes, its status file) is checked with
a raw agent call (guestside.Target.sh), never by asking qgactl.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.vm.guestside import Target, make_target

BOTH = pytest.mark.parametrize("target", ["libvirt", "socket"], indirect=True)
JOBS = "/run/qgactl/jobs"


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    side = make_target(request.param, request)
    yield side
    # Jobs stay until `job rm` by design: kill what a failed test left, and remove the lot so
    # that the exec tests find /run/qgactl empty.
    side.sh(f"for p in {JOBS}/*/pid; do kill -9 -- -$(cat $p) 2>/dev/null; done; rm -rf {JOBS}")
    assert "qgactl-job" not in side.processes()
    assert "/run/qgactl" not in side.agent_fds()


def job_popen(target: Target, sub: str, *rest: str) -> subprocess.Popen[bytes]:
    """qgactl job SUB [DOMAIN] REST... as a process."""
    argv = [sys.executable, "-m", "qgactl", *target.options, "job", sub, *target.domain, *rest]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def job(target: Target, sub: str, *rest: str) -> tuple[int, bytes, bytes]:
    process = job_popen(target, sub, *rest)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def detach(target: Target, *command: str) -> str:
    code, out, err = target.run("exec", "--detach", "--", *command)
    assert (code, err) == (0, b""), err
    job_id = out.decode()
    assert job_id.endswith("\n") and job_id.count("\n") == 1  # the id alone on its line
    return job_id.strip()


def guest_file(target: Target, path: str) -> bytes | None:
    """A file's content read in the guest without qgactl (None: there is no such file)."""
    out = target.sh(f"cat {path} 2>/dev/null || echo missing")[1]
    return None if out == b"missing\n" else out


@BOTH
def test_a_job_outlives_killed_qgactls_and_a_new_qgactl_reads_it(target: Target) -> None:
    go = f"/tmp/qgactl-test-go-{time.monotonic_ns()}"  # the job ends once the test makes it
    script = f"echo out; echo err >&2; while [ ! -e {go} ]; do sleep 0.1; done; echo done; exit 7"
    job_id = detach(target, "sh", "-c", script)
    # The qgactl that started it is gone: the job runs on in the guest.
    assert guest_file(target, f"{JOBS}/{job_id}/status") is None
    pid = guest_file(target, f"{JOBS}/{job_id}/pid")
    assert pid is not None and target.sh(f"kill -0 {pid.decode().strip()}")[0] == 0
    # kill -9 of a waiting qgactl
    waiter = job_popen(target, "wait", job_id)
    time.sleep(0.5)  # let it start waiting (set-up, not an assertion)
    waiter.send_signal(signal.SIGKILL)
    waiter.communicate(timeout=30)
    # SIGTERM of a following one, once it follows: it stops cleanly (128+15), leaving no guest
    # file handle open (checked by the fixture)
    follower = job_popen(target, "logs", "-f", job_id)
    assert follower.stdout is not None and follower.stdout.readline() == b"out\n"
    follower.send_signal(signal.SIGTERM)
    follower.communicate(timeout=30)
    assert follower.returncode == 128 + signal.SIGTERM
    assert target.sh(f"touch {go}")[0] == 0
    assert job(target, "wait", job_id) == (7, b"", b"")
    assert guest_file(target, f"{JOBS}/{job_id}/status") == b"7\n"
    target.sh(f"rm -f {go}")
    # stdout to stdout, stderr to stderr
    assert job(target, "logs", job_id) == (0, b"out\ndone\n", b"err\n")
    assert job(target, "logs", "-f", job_id) == (7, b"out\ndone\n", b"err\n")


@BOTH
def test_logs_follow_prints_output_as_it_comes(target: Target) -> None:
    go = f"/tmp/qgactl-test-go-{time.monotonic_ns()}"  # the job ends once the test makes it
    script = f"echo first; while [ ! -e {go} ]; do sleep 0.1; done; echo second >&2; exit 3"
    job_id = detach(target, "sh", "-c", script)
    process = job_popen(target, "logs", "-f", job_id)
    assert process.stdout is not None
    assert process.stdout.readline() == b"first\n"  # while the job waits for the test
    assert target.sh(f"touch {go}")[0] == 0
    out, err = process.communicate(timeout=60)
    assert (out, err, process.returncode) == (b"", b"second\n", 3)
    target.sh(f"rm -f {go}")


@BOTH
def test_job_list_shows_every_job_with_its_state(target: Target) -> None:
    running = detach(target, "sleep", "30")
    finished = detach(target, "sh", "-c", "exit 4")
    assert job(target, "wait", finished)[0] == 4
    code, out, _ = job(target, "list")
    assert code == 0
    jobs = {job["id"]: job for job in json.loads(out)}
    assert set(jobs) == {running, finished}
    assert jobs[running]["command"] == ["sleep", "30"]
    assert (jobs[running]["state"], jobs[running]["status"]) == ("running", None)
    assert (jobs[finished]["state"], jobs[finished]["status"]) == ("exited", 4)
    assert jobs[running]["started"].endswith("Z")


@BOTH
def test_wait_timeout_exits_5_and_the_job_runs_on(target: Target) -> None:
    job_id = detach(target, "sleep", "60")
    code, _, err = job(target, "wait", "--timeout", "1", job_id)
    assert code == 5
    assert b"still runs" in err
    assert guest_file(target, f"{JOBS}/{job_id}/status") is None
    assert "sleep 60" in target.processes()


@BOTH
def test_kill_ends_the_jobs_whole_process_group(target: Target) -> None:
    job_id = detach(target, "sh", "-c", "sleep 1234 & sleep 1235; echo never")
    assert "sleep 1234" in target.processes()
    assert job(target, "kill", job_id) == (0, b"", b"")
    processes = target.processes()
    assert "sleep 1234" not in processes and "sleep 1235" not in processes
    assert guest_file(target, f"{JOBS}/{job_id}/status") == b"143\n"  # SIGTERM
    assert job(target, "logs", job_id)[:2] == (0, b"")  # sh may say "Terminated" on stderr
    code, _, err = job(target, "kill", job_id)
    assert code == 0 and b"already ended" in err


@BOTH
def test_kill_falls_back_to_sigkill(target: Target) -> None:
    job_id = detach(target, "sh", "-c", "trap '' TERM; sleep 1236 & trap '' TERM; sleep 1237")
    assert job(target, "kill", job_id)[0] == 0
    assert "sleep 123" not in target.processes()
    status = guest_file(target, f"{JOBS}/{job_id}/status")
    assert status is not None and int(status) in (128 + 9, 128 + 15)


@BOTH
def test_rm_removes_a_finished_jobs_directory_and_refuses_a_running_one(target: Target) -> None:
    running = detach(target, "sleep", "30")
    finished = detach(target, "true")
    assert job(target, "wait", finished)[0] == 0
    code, _, err = job(target, "rm", running)
    assert code == 2 and b"still running" in err
    assert target.sh(f"test -d {JOBS}/{running}")[0] == 0
    assert job(target, "rm", finished)[0] == 0
    assert target.sh(f"test -e {JOBS}/{finished}")[0] != 0
    assert job(target, "kill", running)[0] == 0
    code, out, _ = job(target, "rm", "--all-finished")
    assert (code, json.loads(out)) == (0, [running])
    assert target.sh(f"ls -A {JOBS}")[1] == b""


@BOTH
def test_detach_with_json_output_and_env(target: Target) -> None:
    code, out, _ = target.run(
        "exec", "--detach", "-e", "GREETING=hi there", "-s", "--", 'echo "$GREETING"',
        options=("-o", "json"),
    )  # fmt: skip
    assert code == 0
    job_id = json.loads(out)["id"]
    assert job(target, "logs", "-f", job_id) == (0, b"hi there\n", b"")
    assert target.sh(f"stat -c %a {JOBS} {JOBS}/{job_id}")[1] == b"700\n700\n"


@BOTH
def test_unknown_and_unsafe_ids(target: Target) -> None:
    code, _, err = job(target, "logs", "0000dead")
    assert code == 3 and b"no job 0000dead" in err
    for bad in ("../x", "a/b", "..", "x y"):
        code, _, err = job(target, "rm", bad)
        assert code == 2 and b"not a job id" in err
