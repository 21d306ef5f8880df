"""The Python API on a real lab guest under libvirtd. What the API did in the guest is checked
with raw agent calls (tests/vm/guestside.py), never by asking qgactl again."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

import pytest

import qgactl
from lab import lab
from tests.vm.guestside import Target, make_target


@pytest.fixture
def side(request: pytest.FixtureRequest) -> Target:
    return make_target("libvirt", request)


@pytest.fixture
def guest(lab_domain: lab.LabDomain):
    with qgactl.connect(lab_domain, uri=lab_domain.uri, timeout=10) as guest:
        yield guest


def test_exec_streams_output_to_callbacks(guest, side):
    chunks: list[bytes] = []
    errors: list[bytes] = []
    script = "head -c 6000000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3"
    result = guest.exec(script, on_stdout=chunks.append, on_stderr=errors.append)
    assert (result.status, result.exit_code, result.signal) == (3, 3, None)
    assert b"".join(chunks) == b"x" * 6000000 and len(chunks) > 1  # chunked, not one reply
    assert b"".join(errors) == b"oops\n"
    assert result.stdout == b"" and result.stderr == b""  # the callbacks took them
    assert side.sh("ls -A /run/qgactl 2>/dev/null")[1] == b""  # no spool left


def test_exec_stdin_env_and_captured_output(guest):
    data = os.urandom(200_000)  # past what one guest-exec request may carry through libvirt
    result = guest.exec(["sh", "-c", "sha256sum; echo $GREETING >&2"], stdin=data,
                        env={"GREETING": "hello"})  # fmt: skip
    assert result.status == 0
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert result.stderr == b"hello\n"


def test_exec_check_and_a_missing_program(guest):
    with pytest.raises(qgactl.CommandFailed) as failed:
        guest.exec(["false"], check=True)
    assert failed.value.completed.status == 1
    missing = guest.exec(["/no/such/program"])
    assert missing.status == 127 and b"/no/such/program" in missing.stderr


def test_write_file_is_byte_exact_in_the_guest(guest, side):
    data = os.urandom(1_500_000)
    written = guest.write_file("/tmp/api-written.bin", data, mode=0o600)
    assert written == "/tmp/api-written.bin"
    status, out = side.sh("sha256sum /tmp/api-written.bin; stat -c %a /tmp/api-written.bin")
    assert status == 0
    digest, _, mode = out.decode().split()
    assert (digest, mode) == (hashlib.sha256(data).hexdigest(), "600")


def test_read_file_and_copy_out_are_byte_exact(guest, side, tmp_path):
    status, out = side.sh(
        "head -c 2000000 /dev/urandom > /tmp/api-read.bin && sha256sum /tmp/api-read.bin"
    )
    assert status == 0
    digest = out.split()[0].decode()
    assert hashlib.sha256(guest.read_file("/tmp/api-read.bin")).hexdigest() == digest
    copied = guest.copy_out("/tmp/api-read.bin", tmp_path)
    assert copied == tmp_path / "api-read.bin"
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == digest


def test_copy_in_a_file(guest, side, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(70_000))
    assert guest.copy_in(source, "/tmp/") == "/tmp/in.bin"
    out = side.sh("sha256sum /tmp/in.bin")[1]
    assert out.split()[0].decode() == hashlib.sha256(source.read_bytes()).hexdigest()


def test_missing_guest_file_is_a_qgactl_error(guest):
    with pytest.raises(qgactl.QgactlError) as caught:
        guest.read_file("/no/such/file")
    assert "No such file" in str(caught.value)


def test_frozen_thaws_when_the_block_raises(guest, side):
    assert side.raw("guest-fsfreeze-status", None) == "thawed"
    with pytest.raises(RuntimeError, match="in the block"), guest.frozen() as count:
        assert count >= 1
        assert side.raw("guest-fsfreeze-status", None) == "frozen"
        raise RuntimeError("in the block")
    assert side.raw("guest-fsfreeze-status", None) == "thawed"


def test_frozen_refuses_a_guest_someone_else_froze(guest, side):
    assert side.raw("guest-fsfreeze-freeze", None) >= 1
    try:
        with pytest.raises(qgactl.QgactlError, match="already frozen"), guest.frozen():
            pass
        assert side.raw("guest-fsfreeze-status", None) == "frozen"  # theirs: left alone
    finally:
        side.raw("guest-fsfreeze-thaw", None)


def test_unknown_domain_is_not_found(lab_domain):
    guest = qgactl.connect("qgactl-test-no-such-domain", uri=lab_domain.uri)
    with pytest.raises(qgactl.NotFound):
        guest.ping()


def test_targets_glob_and_a_missing_name(lab_domain):
    fleet = qgactl.targets(lab_domain, "qgactl-test-nope", uris=[lab_domain.uri])
    with fleet:
        results = fleet.map(lambda guest: guest.osinfo().id)
    assert [r.guest.domain for r in results] == [lab_domain, "qgactl-test-nope"]
    assert results[0].ok and results[0].value
    assert isinstance(results[1].error, qgactl.NotFound)


@pytest.fixture
def defined_without_channel(libvirt_ready: str):
    """A domain of this test alone, defined and shut off, with no agent channel."""
    name = lab.test_domain_name("api-chan")
    try:
        yield lab.start_domain(name, agent_channel=False, start=False)
    finally:
        lab.destroy_and_undefine(name)


def _inactive_channels(domain: lab.LabDomain) -> list[str]:
    xml = subprocess.run(
        ["virsh", "-c", domain.uri, "dumpxml", "--inactive", domain],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return re.findall(r"<target type='virtio' name='([^']+)'", xml)


def test_add_and_remove_channel(defined_without_channel):
    domain = defined_without_channel
    assert _inactive_channels(domain) == []
    dry = qgactl.add_channel(domain, uri=domain.uri, dry_run=True)
    assert "org.qemu.guest_agent.0" in (dry.diff or "") and not dry.config
    assert _inactive_channels(domain) == []  # a dry run changes nothing

    added = qgactl.add_channel(domain, uri=domain.uri)
    assert (added.config, added.live, added.restart_needed) == (True, False, False)
    assert _inactive_channels(domain) == ["org.qemu.guest_agent.0"]
    again = qgactl.add_channel(domain, uri=domain.uri)
    assert not again.config  # already there: nothing to do

    removed = qgactl.remove_channel(domain, uri=domain.uri)
    assert removed.config and _inactive_channels(domain) == []
    with pytest.raises(qgactl.InvalidUsage):
        qgactl.add_channel(domain, uri=domain.uri, name="org.qemu.guest_agent.1")  # no path


def test_exec_cwd_and_a_start_failure_raised(guest):
    assert guest.exec(["pwd"], cwd="/etc").stdout == b"/etc\n"
    from qgactl.guest_exec import CannotRun

    with pytest.raises(CannotRun) as caught:
        guest.exec(["/no/such/program"], raise_cannot_run=True)
    assert caught.value.exit_code == 127 and isinstance(caught.value, qgactl.QgactlError)


def test_read_file_into_a_sink(guest, side):
    import io

    class Progress:  # guestfile.Progress: told each chunk; sized: asks the file's size first
        sized = True

        def __init__(self) -> None:
            self.calls: list[tuple[int, int | None]] = []

        def __call__(self, count: int, total: int | None) -> None:
            self.calls.append((count, total))

    side.sh("head -c 300000 /dev/urandom > /tmp/api-sink.bin")
    sink, progress = io.BytesIO(), Progress()
    assert guest.read_file("/tmp/api-sink.bin", into=sink, progress=progress) == b""
    digest = side.sh("sha256sum /tmp/api-sink.bin")[1].split()[0].decode()
    assert hashlib.sha256(sink.getvalue()).hexdigest() == digest
    assert progress.calls[0] == (0, 300000)
    assert sum(count for count, _ in progress.calls) == 300000


def test_a_job_outlives_its_start_and_is_removed(guest, side):
    import io

    job_id = guest.start_job(["sh", "-c", "echo out; echo err >&2; exit 3"])
    job = guest.wait_job(job_id, timeout=60)
    assert (job.id, job.state, job.status) == (job_id, "exited", 3)
    out, err = io.BytesIO(), io.BytesIO()
    guest.job_output(job_id, out, err)
    assert (out.getvalue(), err.getvalue()) == (b"out\n", b"err\n")
    assert [j.id for j in guest.jobs(job_id)] == [job_id]
    assert side.sh(f"test -d /run/qgactl/jobs/{job_id}")[0] == 0  # the guest keeps it
    assert guest.remove_jobs(job_id) == [job_id]
    assert side.sh(f"test -e /run/qgactl/jobs/{job_id}")[0] != 0
    side.sh("rmdir /run/qgactl/jobs")  # /run/qgactl as found: test_exec checks it is empty
