"""The Ansible collection qgactl.guest on real lab guests, with ansible-core from PyPI.

The collection is built and installed with ansible-galaxy as a user would
(lab/ansiblelab.py); community.libvirt's libvirt_qemu (from PyPI's `ansible` package) runs the
same playbook as the reference. The busybox lab guest has no Python: `raw` through playbooks,
and put_file / fetch_file / exec_command with stdin through the plugin's own methods, as
Ansible calls them. What happened in the guest is checked raw (tests/vm/guestside.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import ansiblelab, lab
from qgactl.lane import Lane
from tests.vm.guestside import Target, make_target

CONNECTIONS = {"qgactl": "qgactl.guest.agent", "community": "community.libvirt.libvirt_qemu"}


@pytest.fixture(scope="session")
def collections(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ansiblelab.install_collections(tmp_path_factory.mktemp("ansible"))


@pytest.fixture
def side(request: pytest.FixtureRequest) -> Target:
    return make_target("libvirt", request)


def _inventory(path: Path, hosts: dict[str, dict[str, object]]) -> Path:
    path.write_text(json.dumps({"all": {"hosts": hosts}}))  # JSON is YAML
    return path


def _playbook(path: Path, tasks: str, *, hosts: str = "all") -> Path:
    head = f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n"
    path.write_text(head + textwrap.indent(tasks, "    "))
    return path


RAW_TASKS = """\
- name: hello
  raw: echo hello; echo to-stderr >&2
- name: fails
  raw: echo out; echo err >&2; exit 3
  ignore_errors: true
- name: bytes
  raw: printf 'a\\001b\\377c' | od -An -tx1
"""


# community.libvirt splits a raw command with shlex and runs argv[0] without a shell, so only
# commands without shell syntax are compared; the others are ours alone.
SIMPLE_TASKS = """\
- name: kernel
  raw: uname -s
- name: missing file
  raw: cat /no/such/file
  ignore_errors: true
"""


def _run_raw(domain, connection, tasks, collections, tmp_path):
    inventory = _inventory(
        tmp_path / "inventory.json",
        {domain: {"ansible_connection": connection, "ansible_libvirt_uri": domain.uri}},
    )
    run = ansiblelab.run_playbook(_playbook(tmp_path / "raw.yml", tasks), inventory, collections)
    assert run.code == 0, run.stdout + run.stderr
    return run


def test_raw_shell_commands_rc_stdout_stderr(lab_domain, collections, tmp_path):
    run = _run_raw(lab_domain, CONNECTIONS["qgactl"], RAW_TASKS, collections, tmp_path)
    hello = run.task("hello")
    assert (hello["status"], hello["stdout"], hello["stderr"]) == ("ok", "hello\n", "to-stderr\n")
    failed = run.task("fails")
    assert (failed["status"], failed["rc"], failed["stdout"], failed["stderr"]) == (
        "failed", 3, "out\n", "err\n"
    )
    assert run.task("bytes")["stdout"].split() == ["61", "01", "62", "ff", "63"]


def test_raw_gives_what_community_libvirt_gives(lab_domain, collections, tmp_path):
    ours = _run_raw(lab_domain, CONNECTIONS["qgactl"], SIMPLE_TASKS, collections, tmp_path)
    theirs = _run_raw(lab_domain, CONNECTIONS["community"], SIMPLE_TASKS, collections, tmp_path)
    assert ours.task("kernel")["stdout"] == "Linux\n"
    missing = ours.task("missing file")
    assert (missing["status"], missing["rc"]) == ("failed", 1)
    assert "No such file" in missing["stderr"]
    for name in ("kernel", "missing file"):
        for key in ("status", "rc", "stdout", "stderr"):
            assert ours.task(name)[key] == theirs.task(name)[key], (name, key)


# The plugin's own methods, called as Ansible's action plugins call them, in a child process
# with the installed collection (the busybox guest has no Python for modules).
DRIVER = r"""
import json, sys
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader, init_plugin_loader
init_plugin_loader()
options = json.loads(sys.argv[1])
connection = connection_loader.get("qgactl.guest.agent", PlayContext(), None)
connection.set_options(var_options=options)
connection._connect()
request = json.load(sys.stdin)
out = {}
if "put" in request:
    connection.put_file(*request["put"])
if "fetch" in request:
    connection.fetch_file(*request["fetch"])
if "exec" in request:
    data = bytes.fromhex(request.get("stdin", ""))
    rc, stdout, stderr = connection.exec_command(request["exec"], in_data=data or None)
    out = {"rc": rc, "stdout": stdout.decode(), "stderr": stderr.decode()}
connection.close()
print(json.dumps(out))
"""


def _drive(collections: str, options: dict[str, object], request: dict[str, object]) -> dict:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(options)],
        input=json.dumps(request), capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def _options(domain: lab.LabDomain) -> dict[str, object]:
    return {"inventory_hostname": str(domain), "ansible_libvirt_uri": domain.uri}


def test_put_and_fetch_20_mib_byte_exact(lab_domain, collections, side, tmp_path):
    data = os.urandom(20 * 1024 * 1024)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    _drive(collections, _options(lab_domain), {"put": [str(source), "/tmp/ansible-in.bin"]})
    _, out = side.sh("sha256sum /tmp/ansible-in.bin; ls -A /tmp | grep -c qgactl", 60)
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert out.split()[-1] == b"0"  # no temporary file left beside it

    back = tmp_path / "back.bin"
    _drive(collections, _options(lab_domain), {"fetch": ["/tmp/ansible-in.bin", str(back)]})
    assert hashlib.sha256(back.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "in.bin"]


def test_exec_command_stdin_home_rc_and_stderr(lab_domain, collections):
    data = os.urandom(400_000)  # past libvirt's ~190 KB guest-exec input cliff: spooled
    out = _drive(
        collections,
        _options(lab_domain),
        {"exec": "/bin/sh -c 'sha256sum; echo ~ >&2; exit 4'", "stdin": data.hex()},
    )
    assert out["rc"] == 4
    assert out["stdout"].split()[0] == hashlib.sha256(data).hexdigest()
    assert out["stderr"].strip().startswith("/") and "~" not in out["stderr"]


def test_a_missing_domain_is_unreachable(libvirt_ready, collections, tmp_path):
    inventory = _inventory(
        tmp_path / "gone.json",
        {"qgactl-test-no-such-domain": {"ansible_connection": "qgactl.guest.agent"}},
    )
    run = ansiblelab.run_playbook(_playbook(tmp_path / "p.yml", RAW_TASKS), inventory, collections)
    assert run.code == 4, run.stdout  # ansible-playbook: 4 = a host unreachable
    assert run.task("hello")["status"] == "unreachable"
    assert "not found" in run.task("hello")["msg"]


@pytest.fixture
def own_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """A domain of this test alone: its agent gets stopped."""
    name = lab.test_domain_name("ansible-hang")
    try:
        yield lab.start_domain(name)
    finally:
        lab.destroy_and_undefine(name)


def test_an_agent_that_hangs_mid_play_is_unreachable_not_a_hang(own_domain, collections, tmp_path):
    inventory = _inventory(
        tmp_path / "hang.json",
        {own_domain: {"ansible_connection": "qgactl.guest.agent",
                      "ansible_libvirt_uri": own_domain.uri, "ansible_timeout": 3,
                      "ansible_qgactl_transport": "libvirt"}},
    )  # fmt: skip
    tasks = """\
- name: before
  raw: echo up
- name: agent stops
  raw: (sleep 1; kill -STOP $(pidof qemu-ga)) >/dev/null 2>&1 & sleep 3; echo done
- name: after
  raw: echo never
"""
    started = time.monotonic()
    run = ansiblelab.run_playbook(_playbook(tmp_path / "p.yml", tasks), inventory, collections,
                                  timeout=180)  # fmt: skip
    assert run.task("before")["status"] == "ok"
    stopped = run.task("agent stops")
    assert stopped["status"] == "unreachable", stopped
    assert "no answer within the timeout" in stopped["msg"], stopped
    assert not [r for r in run.records if r["task"] == "after"]  # an unreachable host stops
    assert run.code == 4
    assert time.monotonic() - started < 180  # ended by itself (run_playbook's bound is 180 s)


def _plain(value: dict) -> object:
    """ansible-inventory 2.19 writes the plugin's strings as {"__ansible_unsafe": "..."}."""
    return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else value


def test_inventory_over_two_hosts(lab_domain, second_host, second_host_domain, collections,
                                  tmp_path):  # fmt: skip
    source = tmp_path / "lab.qgactl.yml"
    source.write_text(json.dumps({
        "plugin": "qgactl.guest.domains",
        "uris": [{"uri": lab_domain.uri, "name": "first"},
                 {"uri": second_host.uri, "name": "second"}],
        "timeout": 10,
    }))  # fmt: skip
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections, "PYTHONWARNINGS": "ignore",
           "ANSIBLE_INVENTORY_ENABLED": "qgactl.guest.domains"}  # fmt: skip
    listing = subprocess.run(
        [ansiblelab.BIN / "ansible-inventory", "-i", source, "--list"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    inventory = json.loads(listing.stdout, object_hook=_plain)
    assert lab_domain in inventory["host_first"]["hosts"]
    assert second_host_domain in inventory["host_second"]["hosts"]
    for name, domain in ((lab_domain, lab_domain), (second_host_domain, second_host_domain)):
        variables = inventory["_meta"]["hostvars"][name]
        assert variables["ansible_connection"] == "qgactl.guest.agent"
        assert variables["ansible_libvirt_uri"] == domain.uri
        assert "10.0.2.15" in variables["qgactl_ip_addresses"]
        os_id = variables["qgactl_os"]["id"]
        assert name in inventory[f"os_{os_id}"]["hosts"]

    run = ansiblelab.run_playbook(
        _playbook(tmp_path / "p.yml", "- name: hello\n  raw: hostname\n"),
        source, collections, args=("--limit", f"{lab_domain},{second_host_domain}"),
        env={"ANSIBLE_INVENTORY_ENABLED": "qgactl.guest.domains"},
    )  # fmt: skip
    assert run.code == 0, run.stdout + run.stderr
    assert {r["host"] for r in run.records if r["status"] == "ok"} == {
        lab_domain, second_host_domain
    }


# -- a real Debian 12 guest with python3: ordinary modules, both plugins --------------------

PLAYBOOKS = ansiblelab.ROOT / "lab" / "ansible"


def _sh_raw(conn, domain: str):
    from tests.vm.guestside import libvirt_raw

    return Target(domain, [], [domain], libvirt_raw(conn.lookupByName(domain)))


@pytest.mark.parametrize("plugin", ["qgactl", "community"])
def test_ordinary_modules_on_debian(plugin, debian_domain, conn, collections, tmp_path):
    """Ours with Ansible's defaults; community.libvirt with its remote-tmp workaround (an
    absolute ansible_remote_tmp: issue #161), as the reference."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(20 * 1024 * 1024))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    fetched = tmp_path / "fetched.bin"
    host = {"ansible_connection": CONNECTIONS[plugin], "ansible_libvirt_uri": debian_domain.uri,
            "ansible_python_interpreter": "/usr/bin/python3"}  # fmt: skip
    if plugin == "community":
        host["ansible_remote_tmp"] = "/tmp/.ansible-reference"
    inventory = _inventory(tmp_path / "inventory.json", {debian_domain: host})
    run = ansiblelab.run_playbook(
        PLAYBOOKS / "modules.yml", inventory, collections,
        args=("-e", json.dumps({"payload": str(payload), "fetched": str(fetched)})),
        timeout=900,
    )  # fmt: skip
    assert run.code == 0, run.stdout + run.stderr
    for record in run.records:
        expected = "failed" if record["task"] == "failing command" else "ok"
        assert record["status"] == expected, record
    assert run.task("facts")["msg"] == "Debian 12"
    failing = run.task("failing command")
    assert failing["rc"] == 2 and "No such file" in failing["stderr"]
    # lookup() strips the file's last newline and the command module adds one back
    conf = (PLAYBOOKS / "app.conf.j2").read_bytes()
    assert run.task("stdin")["stdout"].split()[0] == hashlib.sha256(conf).hexdigest()
    assert run.task("read back")["stdout"].splitlines()[1:] == [
        f"name = {debian_domain}", "os = Debian", "extra = yes"
    ]
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == digest
    side = _sh_raw(conn, debian_domain)
    _, out = side.sh("sha256sum /tmp/qgactl-ansible/payload.bin; stat -c %a "
                     "/tmp/qgactl-ansible/payload.bin", 120)  # fmt: skip
    assert out.decode().split()[0::2] == [digest, "640"]
    if plugin == "qgactl":  # it went through a lane, which stays for the next playbook
        assert len(_lane_ports(debian_domain)) == 1
        Lane(debian_domain, debian_domain.uri, persist=0, timeout=10).stop()
        assert not _lane_ports(debian_domain)


def _lane_ports(domain: lab.LabDomain) -> list[str]:
    """The lane ports in the domain's live XML (virsh, not qgactl)."""
    xml = subprocess.run(
        ["virsh", "-c", domain.uri, "dumpxml", domain], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in xml.splitlines() if "<target" in line and "org.qgactl.lane." in line]


MIXED_TASKS = """\
- name: raw everywhere
  raw: echo hello from $(hostname)
- name: a module where there is python3
  command: cat /etc/debian_version
  when: inventory_hostname == "{debian}"
"""


def test_two_playbooks_at_once_over_two_guests_with_forks(debian_domain, lab_domain, collections,
                                                         tmp_path):  # fmt: skip
    """A lane shared by two playbooks on the Debian guest, the agent alone on the busybox one
    (no python3 there), -f 2 in each playbook."""
    hosts = {domain: {"ansible_connection": CONNECTIONS["qgactl"],
                      "ansible_libvirt_uri": domain.uri,
                      "ansible_python_interpreter": "/usr/bin/python3"}
             for domain in (debian_domain, lab_domain)}  # fmt: skip
    inventory = _inventory(tmp_path / "inventory.json", hosts)
    playbook = _playbook(tmp_path / "mixed.yml", MIXED_TASKS.format(debian=debian_domain))
    runs: list[ansiblelab.Run] = []
    threads = [
        threading.Thread(target=lambda: runs.append(ansiblelab.run_playbook(
            playbook, inventory, collections, args=("-f", "2"), timeout=600)))
        for _ in range(2)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(700)
    assert len(runs) == 2
    for run in runs:
        assert run.code == 0, run.stdout + run.stderr
        for domain in (debian_domain, lab_domain):
            assert run.task("raw everywhere", domain)["stdout"].startswith("hello from ")
        module = run.task("a module where there is python3", debian_domain)
        assert module["stdout"].startswith("12")
    assert len(_lane_ports(debian_domain)) == 1 and not _lane_ports(lab_domain)
    Lane(debian_domain, debian_domain.uri, persist=0, timeout=10).stop()
