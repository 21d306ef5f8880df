"""add-channel / remove-channel without a real hypervisor: --file, stdin, --qemu-args, and
domains served by libvirt's test driver (no daemon).

What persists where (checked by test_test_driver_state_is_per_process):
    * ``test:///<absolute path to a node XML>`` loads that file into a fresh, private state for
      every connection: each qgactl process sees the file's domains as written, and whatever
      it defines is gone when it exits (the file is never written back). A node file lets a
      test shape domains libvirt's default test domain can't be: QEMU-typed, shut off
      (``<test:runstate>5</test:runstate>``), transient (``<test:transient/>``).
    * ``test:///default`` is shared by every connection of ONE process: the in-process tests
      (the end of this file) define a domain from pytest, run ``qgactl.cli.main`` in the same
      process, and read back what qgactl defined.
The test driver defines, looks up and returns XML; attach/detachDeviceFlags answer
VIR_ERR_NO_SUPPORT, which is how the "configuration changed, live hot-plug failed" path is
exercised here (the real hot-plug is in tests/vm/test_channel.py).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from qgactl.xmlgen import add_agent_channel, list_channels

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"
AGENT0 = "org.qemu.guest_agent.0"
AGENT1 = "org.qemu.guest_agent.1"

CHANNEL_LINES = [
    "+    <channel type='unix'>",
    "+      <source mode='bind'/>",
    f"+      <target type='virtio' name='{AGENT0}'/>",
    "+    </channel>",
]


def golden(case: str, kind: str = "in") -> str:
    return (GOLDEN / f"{case}.{kind}.xml").read_text(encoding="utf-8")


def one_line_error(run: Any, code: int) -> str:
    """The run failed with CODE and said so in one `qgactl: ... (hint: ...)` line."""
    assert run.code == code, (run.code, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("qgactl: ")]
    assert len(errors) == 1, run.stderr
    assert "(hint: " in errors[0]
    return errors[0]


def run_stdin(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """qgactl as a real process with STDIN on its standard input (the qgactl fixture has none)."""
    env = {key: value for key, value in os.environ.items() if key != "QGACTL_OUTPUT"}
    return subprocess.run(
        [sys.executable, "-m", "qgactl", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
    )


# --- test-driver node files ---------------------------------------------------------------

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def domain(
    name: str, devices: str = "", *, kind: str = "qemu", off: bool = False, transient: bool = False
) -> str:
    extra = ("<test:runstate>5</test:runstate>" if off else "") + (
        "<test:transient/>" if transient else ""
    )
    return f"""  <domain type='{kind}' xmlns:test='{TEST_NS}'>
    <name>{name}</name>
    <memory unit='KiB'>65536</memory>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>{devices}</devices>
    {extra}
  </domain>
"""


CONTROLLER = "<controller type='virtio-serial' index='0'/>"
AGENT_CHANNEL = (
    f"<channel type='unix'><source mode='bind'/><target type='virtio' name='{AGENT0}'/></channel>"
)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    """A test-driver URI with a few QEMU domains; every qgactl process starts from this file."""
    node = tmp_path / "node.xml"
    node.write_text(
        "<node>\n"
        + domain("running", CONTROLLER)  # running, controller, no channel
        + domain("off", off=True)  # shut off, no devices at all
        + domain("agent", CONTROLLER + AGENT_CHANNEL, off=True)  # already has the channel
        + domain("running-agent", CONTROLLER + AGENT_CHANNEL)  # running with the channel
        + domain("transient", CONTROLLER, transient=True)
        + domain(
            "spice",
            f"<channel type='spicevmc'><target type='virtio' name='{AGENT0}'/></channel>",
            off=True,
        )
        + "</node>\n"
    )
    return f"test://{node}"


def summary(run: Any) -> dict[str, Any]:
    data = run.json()
    assert set(data) == {
        "domain", "changed", "config", "live", "added_controller", "restart_needed", "notes"
    }  # fmt: skip
    assert data["changed"] is (data["config"] or data["live"])
    return data  # type: ignore[no-any-return]


# --- --qemu-args ---------------------------------------------------------------------------


def test_qemu_args(qgactl):
    run = qgactl("add-channel", "--qemu-args")
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines() == [
        "-device virtio-serial-pci,id=virtio-serial0",
        "-chardev socket,id=qga0,path=/tmp/qga.sock,server=on,wait=off",
        f"-device virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,name={AGENT0}",
    ]
    assert f"qemu-ga -m virtio-serial -p /dev/virtio-ports/{AGENT0}" in run.stderr


def test_qemu_args_quote_for_the_shell_and_for_qemu(qgactl):
    run = qgactl("add-channel", "--qemu-args", "--name", AGENT1, "--path", "/tmp/a b,c.sock")
    assert run.code == 0, run.stderr
    # QEMU doubles a comma inside a value; the shell needs the space quoted.
    assert run.stdout.splitlines()[1] == (
        "-chardev 'socket,id=qga0,path=/tmp/a b,,c.sock,server=on,wait=off'"
    )
    assert run.stdout.splitlines()[2].endswith(f"name={AGENT1}")


@pytest.mark.parametrize(
    "extra", [["vm1"], ["--dry-run"], ["--live"], ["--file", "-"], ["--address", "0.0.2"]]
)
def test_qemu_args_stands_alone(qgactl, extra):
    line = one_line_error(qgactl("add-channel", "--qemu-args", *extra), 2)
    assert "--qemu-args can't be combined with" in line


# --- --file and stdin ----------------------------------------------------------------------


def test_file_prints_the_patched_xml_byte_for_byte(qgactl, tmp_path):
    src = tmp_path / "vm2.xml"
    src.write_text(golden("add-existing-controller"), encoding="utf-8")
    run = qgactl("add-channel", "--file", str(src))
    assert run.code == 0, run.stderr
    assert run.stdout == golden("add-existing-controller", "out")
    assert f"added agent channel {AGENT0}" in run.stderr
    assert src.read_text(encoding="utf-8") == golden("add-existing-controller")  # untouched


def test_stdin_to_stdout_keeps_crlf_and_non_ascii():
    src = golden("add-no-devices").replace("\n", "\r\n").replace("<name>", "<name>vé-")
    run = run_stdin("add-channel", "--file", "-", stdin=src.encode())
    assert run.returncode == 0, run.stderr
    out = run.stdout.decode("utf-8")
    assert out == add_agent_channel(src).xml
    assert "vé-" in out and "\n" not in out.replace("\r\n", "")
    assert b"added a virtio-serial controller (index 0)" in run.stderr


def test_stdin_is_idempotent_through_a_pipe():
    once = run_stdin("add-channel", "--file", "-", stdin=golden("add-spice-vdagent").encode())
    twice = run_stdin("add-channel", "--file", "-", stdin=once.stdout)
    assert once.returncode == twice.returncode == 0
    assert twice.stdout == once.stdout
    assert b"already present" in twice.stderr


def test_file_with_the_channel_already_there_is_unchanged(qgactl, tmp_path):
    src = tmp_path / "agent.xml"
    src.write_text(golden("add-agent-unix-bind"), encoding="utf-8")
    run = qgactl("add-channel", "--file", str(src))
    assert run.code == 0
    assert run.stdout == golden("add-agent-unix-bind")
    assert f"agent channel {AGENT0} already present" in run.stderr


def test_dry_run_file_prints_only_the_added_lines(qgactl, tmp_path):
    src = tmp_path / "vm2.xml"
    src.write_text(golden("add-existing-controller"), encoding="utf-8")
    run = qgactl("add-channel", "--file", str(src), "--dry-run")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == [f"--- {src}", f"+++ {src} (patched)"]
    changed = [line for line in lines[2:] if line[:1] in "+-"]
    assert changed == CHANNEL_LINES
    # The diff is the same one difflib makes from the patched text: applying it gives it back.
    expected = difflib.unified_diff(
        golden("add-existing-controller").splitlines(keepends=True),
        golden("add-existing-controller", "out").splitlines(keepends=True),
        str(src),
        f"{src} (patched)",
    )
    assert run.stdout == "".join(expected)


def test_dry_run_marks_a_missing_final_newline(qgactl, tmp_path):
    src = tmp_path / "one-line.xml"
    src.write_text(golden("add-one-line").rstrip("\n"), encoding="utf-8")
    run = qgactl("add-channel", "--file", str(src), "--dry-run")
    assert run.code == 0, run.stderr
    assert "\\ No newline at end of file" in run.stdout


def test_remove_file_round_trip(qgactl, tmp_path):
    src = tmp_path / "vm2.xml"
    src.write_text(golden("add-existing-controller", "out"), encoding="utf-8")
    run = qgactl("remove-channel", "--file", str(src))
    assert run.code == 0, run.stderr
    assert run.stdout == golden("add-existing-controller")
    assert f"removed channel {AGENT0}" in run.stderr
    again = run_stdin("remove-channel", "--file", "-", stdin=run.stdout.encode())
    assert again.returncode == 0 and again.stdout.decode() == run.stdout
    assert f"no channel {AGENT0} in this domain".encode() in again.stderr


def test_remove_dry_run_shows_the_removed_lines(qgactl, tmp_path):
    src = tmp_path / "vm2.xml"
    src.write_text(golden("add-existing-controller", "out"), encoding="utf-8")
    run = qgactl("remove-channel", "--file", str(src), "--dry-run")
    assert run.code == 0
    changed = [line for line in run.stdout.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-" + line[1:] for line in CHANNEL_LINES]


def test_dedicated_channel_with_a_pinned_port(qgactl, tmp_path):
    src = tmp_path / "spice.xml"
    src.write_text(golden("add-spice-vdagent"), encoding="utf-8")
    run = qgactl(
        "add-channel", "--file", str(src), "--name", AGENT1,
        "--path", "/run/qga/desktop.sock", "--address", "0.0.2",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    [channel] = [c for c in list_channels(run.stdout) if c.name == AGENT1]
    assert (channel.type, channel.mode, channel.path) == ("unix", "bind", "/run/qga/desktop.sock")
    assert "<address type='virtio-serial' controller='0' bus='0' port='2'/>" in run.stdout


# --- refusals: exit 8, one line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        ("<domain type='kvm'><devices>", "malformed domain XML"),
        ("<domain type='xen'><devices/></domain>", "type 'xen'"),
        ("<network><name>x</name></network>", "not <domain>"),
        (
            "<domain type='kvm'><devices><channel type='spicevmc'>"
            f"<target type='virtio' name='{AGENT0}'/></channel></devices></domain>",
            "already used by a spicevmc channel",
        ),
    ],
)
def test_refusals_are_exit_8_in_one_line(qgactl, tmp_path, xml, words):
    src = tmp_path / "bad.xml"
    src.write_text(xml, encoding="utf-8")
    run = qgactl("add-channel", "--file", str(src))
    line = one_line_error(run, 8)
    assert line.startswith(f"qgactl: {src}: ") and words in line
    assert run.stdout == ""


def test_a_pinned_port_that_is_taken_is_refused(qgactl, tmp_path):
    src = tmp_path / "spice.xml"
    src.write_text(golden("add-spice-vdagent"), encoding="utf-8")
    run = qgactl(
        "add-channel", "--file", str(src), "--name", AGENT1, "--path", "/run/q.sock",
        "--address", "0.0.1",
    )  # fmt: skip
    line = one_line_error(run, 8)
    assert "virtio-serial port 0.0.1 is already taken by channel com.redhat.spice.0" in line


def test_non_utf8_file_is_refused(qgactl, tmp_path):
    src = tmp_path / "latin1.xml"
    src.write_bytes("<domain type='kvm'><name>caf\xe9</name></domain>".encode("latin-1"))
    assert "is not UTF-8" in one_line_error(qgactl("add-channel", "--file", str(src)), 8)


def test_malformed_stdin_is_one_line():
    run = run_stdin("add-channel", "--file", "-", stdin=b"<domain type='kvm'")
    assert run.returncode == 8 and run.stdout == b""
    [line] = run.stderr.decode().splitlines()
    assert line.startswith("qgactl: <stdin>: malformed domain XML")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add-channel"], "missing DOMAIN"),
        (["add-channel", "vm1", "--file", "-"], "--file can't be combined with DOMAIN"),
        (["add-channel", "--file", "-", "--live"], "--file can't be combined with --live"),
        (["add-channel", "vm1", "--name", AGENT1], f"--name {AGENT1} needs --path"),
        (["add-channel", "--file", "/nonexistent.xml"], "does not exist"),
        (["add-channel", "--file", "-", "--address", "1.2"], "not CONTROLLER.BUS.PORT"),
        (["--socket", "/tmp/s", "remove-channel", "vm1"], "--socket does not apply"),
    ],
)
def test_usage_errors(qgactl, args, words):
    assert words in one_line_error(qgactl(*args), 2)


# --- domains on the test driver (a fresh state per process) ------------------------------------


def test_test_driver_state_is_per_process(qgactl, uri):
    first = qgactl("-c", uri, "add-channel", "off")
    assert first.code == 0, first.stderr
    assert summary(first)["config"] is True
    # A second process loads the node file again: the define above did not persist.
    second = qgactl("-c", uri, "add-channel", "off", "--dry-run")
    assert second.code == 0
    assert "+    <controller type='virtio-serial' index='0'/>" in second.stdout


def test_shut_off_domain_gets_controller_and_channel(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "off")
    assert run.code == 0, run.stderr
    data = summary(run)
    assert data == {
        **data,
        "domain": "off",
        "config": True,
        "live": False,
        "added_controller": True,
        "restart_needed": False,
    }
    assert "off is shut off: the channel is used from its next start" in run.stderr
    assert "config: added a virtio-serial controller (index 0)" in run.stderr


def test_dry_run_diffs_the_persistent_config(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "running", "--dry-run")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["--- running (config XML)", "+++ running (config XML), patched"]
    assert [line for line in lines[2:] if line[:1] in "+-"] == CHANNEL_LINES
    assert f"live: would hot-plug channel {AGENT0} into the running domain" in run.stderr
    assert "dry run: nothing changed" in run.stderr


def test_dry_run_with_nothing_to_do_prints_no_diff(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "agent", "--dry-run")
    assert run.code == 0 and run.stdout == ""
    assert "already present" in run.stderr


def test_already_present_defines_nothing(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "agent")
    assert run.code == 0, run.stderr
    data = summary(run)
    assert (data["changed"], data["config"], data["live"]) == (False, False, False)
    assert f"config: agent channel {AGENT0} already present" in run.stderr


def test_running_already_present_needs_no_hot_plug(qgactl, uri):
    # The test driver can't attach: exit 0 proves that nothing was attempted.
    run = qgactl("-c", uri, "add-channel", "running-agent")
    assert run.code == 0, run.stderr
    assert summary(run)["changed"] is False
    assert f"live: agent channel {AGENT0} already present" in run.stderr


def test_config_changed_but_live_hot_plug_failed(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "running")
    line = one_line_error(run, 9)
    assert line.startswith(
        f"qgactl: running: the configuration was changed (added channel {AGENT0}), but the "
        "live hot-plug failed: this function is not supported by the connection driver"
    )
    assert "qgactl add-channel running --live" in line
    data = summary(run)  # the JSON still tells a script what happened
    assert (data["config"], data["live"]) == (True, False)


def test_config_only_on_a_running_domain_waits_for_the_next_boot(qgactl, uri):
    run = qgactl("-c", uri, "add-channel", "running", "--config")
    assert run.code == 0, run.stderr
    data = summary(run)
    assert (data["config"], data["live"], data["restart_needed"]) == (True, False, True)
    assert "the change takes effect at the next boot" in run.stderr


def test_live_alone_that_fails_changed_nothing(qgactl, uri):
    line = one_line_error(qgactl("-c", uri, "add-channel", "running", "--live"), 9)
    assert "configuration was changed" not in line and "not supported" in line


def test_live_needs_a_running_domain(qgactl, uri):
    assert "--live: domain off is not running" in one_line_error(
        qgactl("-c", uri, "add-channel", "off", "--live"), 4
    )


def test_config_needs_a_persistent_domain(qgactl, uri):
    assert "transient" in one_line_error(
        qgactl("-c", uri, "add-channel", "transient", "--config"), 2
    )


def test_transient_domain_default_is_live_only(qgactl, uri):
    line = one_line_error(qgactl("-c", uri, "add-channel", "transient"), 9)
    assert "configuration was changed" not in line


def test_domain_not_found_is_exit_3(qgactl, uri):
    assert "'nope' not found" in one_line_error(qgactl("-c", uri, "add-channel", "nope"), 3)


def test_non_qemu_domain_is_refused(qgactl):
    line = one_line_error(qgactl("-c", "test:///default", "add-channel", "test"), 8)
    assert line.startswith("qgactl: test: the domain has type 'test'")


def test_channel_name_taken_by_spice_is_refused(qgactl, uri):
    line = one_line_error(qgactl("-c", uri, "add-channel", "spice"), 8)
    assert f"channel name {AGENT0} is already used by a spicevmc channel" in line


def test_remove_from_shut_off_domain(qgactl, uri):
    run = qgactl("-c", uri, "remove-channel", "agent")
    assert run.code == 0, run.stderr
    data = summary(run)
    assert (data["config"], data["live"], data["added_controller"]) == (True, False, False)


def test_remove_absent_is_a_no_op(qgactl, uri):
    run = qgactl("-c", uri, "remove-channel", "running")
    assert run.code == 0, run.stderr
    assert summary(run)["changed"] is False
    assert f"no channel {AGENT0} in this domain" in run.stderr


def test_remove_config_only_leaves_the_running_domain_until_the_next_boot(qgactl, uri):
    run = qgactl("-c", uri, "remove-channel", "running-agent", "--config")
    assert run.code == 0, run.stderr
    assert summary(run)["restart_needed"] is True


def test_table_output_is_a_summary_on_stderr(qgactl, uri):
    run = qgactl("-c", uri, "-o", "table", "add-channel", "off")
    assert run.code == 0 and run.stdout == ""
    assert run.stderr.splitlines()[-1] == f"off: added channel {AGENT0} (configuration)"
    run = qgactl("-c", uri, "-o", "table", "add-channel", "agent")
    assert run.stderr.splitlines()[-1] == "agent: nothing to change"


# --- in-process: what qgactl defined, read back from test:///default --------------------------


@pytest.fixture
def shared_domain() -> Any:
    """A QEMU domain (with a VNC password) in this process's test:///default; undefined after."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    name = f"qgactl-{uuid.uuid4().hex[:8]}"
    dom = conn.defineXML(
        f"<domain type='qemu'><name>{name}</name><memory>65536</memory>"
        "<os><type arch='x86_64'>hvm</type></os>"
        "<devices><graphics type='vnc' passwd='s3cret'/></devices></domain>"
    )
    try:
        yield dom
    finally:
        dom.undefine()
        conn.close()


def run_in_process(capsys: Any, *args: str) -> tuple[int, str, str]:
    from qgactl.cli import run

    code = run(["-c", "test:///default", "-o", "json", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_defined_xml_has_the_channel_and_keeps_secrets(capsys, shared_domain):
    import json

    import libvirt

    secure_inactive = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE
    code, out, err = run_in_process(capsys, "add-channel", shared_domain.name())
    assert code == 0, err
    assert json.loads(out)["added_controller"] is True
    stored = shared_domain.XMLDesc(secure_inactive)
    assert [(c.name, c.type) for c in list_channels(stored)] == [(AGENT0, "unix")]
    assert "<controller type='virtio-serial' index='0'/>" in stored
    # XMLDesc without VIR_DOMAIN_XML_SECURE leaves passwords out: a define of that would have
    # dropped the VNC password.
    assert "passwd='s3cret'" in stored

    code, out, err = run_in_process(capsys, "remove-channel", shared_domain.name())
    assert code == 0, err
    stored = shared_domain.XMLDesc(secure_inactive)
    assert list_channels(stored) == []
    assert "<controller type='virtio-serial' index='0'/>" in stored  # the controller stays
    assert "passwd='s3cret'" in stored


def test_dry_run_defines_nothing_and_prints_no_secret(capsys, shared_domain):
    import libvirt

    before = shared_domain.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    code, out, err = run_in_process(capsys, "add-channel", shared_domain.name(), "--dry-run")
    assert code == 0, err
    assert "+    <controller type='virtio-serial' index='0'/>" in out
    assert "s3cret" not in out
    assert shared_domain.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE) == before
