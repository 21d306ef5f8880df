"""shutdown, reboot, ssh-keys and set-password on real guests (ssh-keys and set-password for
the lab guest's user qgauser), and libvirt's agent error state (code 86) for real. Every effect
is checked without qgactl: the domain's state through virsh, the guest's files through a raw
guest-exec (libvirt-python's qemuAgentCommand), the key listing against `virsh
get-user-sshkeys`, the QEMU process by its PID.

Shutdown and reboot end their guest: they get throwaway guests of their own (session fixtures
of this module, booted once each), never the shared lab domain. So does the error state, which
only a restart of qemu-ga in the guest clears.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator

import pytest
from testkeys import public_key

from lab import lab
from tests.vm.guestside import libvirt_raw, socket_raw

USER = "qgauser"  # the lab guest's account: a home with ~/.ssh, a shadow entry, a chpasswd


def virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-q", "-c", lab.URI, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def virsh_agent(domain: str, request: str, *options: str) -> subprocess.CompletedProcess[str]:
    return virsh("qemu-agent-command", domain, request, *options, check=False)


def virsh_ping(domain: str) -> subprocess.CompletedProcess[str]:
    return virsh_agent(domain, '{"execute":"guest-ping"}')


def guest_sh(raw, script: str, timeout: float = 30) -> str:
    """Run a shell script in the guest through a raw agent call; its stdout (exit 0 only)."""
    pid = raw("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})[
        "pid"
    ]
    give_up = time.monotonic() + timeout
    while not (status := raw("guest-exec-status", {"pid": pid}))["exited"]:
        assert time.monotonic() < give_up, script
        time.sleep(0.05)
    assert status.get("exitcode") == 0, (script, status)
    return base64.b64decode(status.get("out-data", "")).decode()


def throwaway(suffix: str, **kwargs: object) -> Iterator[lab.LabDomain]:
    name = lab.test_domain_name(suffix)
    try:
        domain = lab.start_domain(name, **kwargs)  # type: ignore[arg-type]
    except lab.LabError as exc:
        lab.destroy_and_undefine(name)
        pytest.fail(f"throwaway domain {name} did not come up: {exc}", pytrace=False)
    try:
        yield domain
    finally:
        lab.destroy_and_undefine(name)


@pytest.fixture(scope="module")
def power_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """Rebooted, then shut down, by the tests below (in this order)."""
    yield from throwaway("power")


@pytest.fixture(scope="module")
def power_qemu(lab_paths: lab.Paths, tmp_path_factory: pytest.TempPathFactory):
    guest = lab.PlainQemuGuest(tmp_path_factory.mktemp("power-qemu"))
    try:
        guest.start()
    except lab.LabError as exc:
        guest.stop()
        pytest.fail(f"plain QEMU guest did not come up: {exc}", pytrace=False)
    try:
        yield guest
    finally:
        guest.stop()


# -- reboot and shutdown -----------------------------------------------------------------------


def test_reboot_wait_returns_when_the_rebooted_agent_answers(qgactl, conn, power_domain):
    raw = libvirt_raw(conn.lookupByName(power_domain))
    domain_id = conn.lookupByName(power_domain).ID()
    started = time.monotonic()
    run = qgactl("-c", power_domain.uri, "reboot", power_domain, "--wait", "120", timeout=180)
    elapsed = time.monotonic() - started
    assert run.code == 0, run.stderr
    result = run.json()
    assert result["action"] == "reboot" and result["outcome"] == "answers again"
    # the guest really booted again since the request, in the same QEMU process
    uptime = float(guest_sh(raw, "cat /proc/uptime").split()[0])
    assert uptime < elapsed, (uptime, elapsed)
    assert virsh("domstate", power_domain).stdout.strip() == "running"
    assert conn.lookupByName(power_domain).ID() == domain_id
    print(f"reboot --wait: {result['seconds']} s to the agent answering again (uptime {uptime})")


def test_shutdown_wait_returns_when_libvirt_says_shut_off(qgactl, power_domain):
    run = qgactl("-c", power_domain.uri, "shutdown", power_domain, "--wait", "60", timeout=120)
    assert run.code == 0, run.stderr
    result = run.json()
    assert result == {
        "target": power_domain,
        "action": "powerdown",
        "waited": True,
        "outcome": "shut off",
        "seconds": result["seconds"],
        "wake": None,
    }
    assert virsh("domstate", power_domain).stdout.strip() == "shut off"  # independently
    print(f"shutdown --wait through libvirt: {result['seconds']} s to shut off")


def test_shutdown_wait_on_a_socket_returns_when_qemu_exits(qgactl, power_qemu):
    assert power_qemu.proc is not None and power_qemu.proc.poll() is None
    run = qgactl("--socket", str(power_qemu.socket_path), "shutdown", "--wait", "60", timeout=120)
    assert run.code == 0, run.stderr
    assert run.json()["outcome"] == "channel closed"
    power_qemu.proc.wait(10)  # independently: the QEMU process has exited (or does at once)
    assert power_qemu.proc.returncode == 0
    print(f"shutdown --wait on a socket: {run.json()['seconds']} s to QEMU exiting")


# -- ssh-keys ----------------------------------------------------------------------------------


@pytest.fixture
def keys_home(conn, lab_domain) -> Iterator[tuple[object, str]]:
    """The lab guest's raw agent and USER's home, with no authorized_keys before and after."""
    raw = libvirt_raw(conn.lookupByName(lab_domain))
    home = guest_sh(raw, f"awk -F: '$1 == \"{USER}\" {{print $6}}' /etc/passwd").strip()
    guest_sh(raw, f"rm -f {home}/.ssh/authorized_keys")
    try:
        yield raw, home
    finally:
        guest_sh(raw, f"rm -f {home}/.ssh/authorized_keys")


def same_as_virsh(conn, domain: str, keys: list[str]) -> bool:
    """qgactl's listing is libvirt's (authorizedSSHKeysGet) and `virsh get-user-sshkeys`'s, in
    the agent's order (qemu-ga 7.2 lists the file's lines last first). virsh 9.0 prints the
    keys with no separator, and fails where qgactl lists none (no authorized_keys file)."""
    listed = virsh("get-user-sshkeys", domain, USER, check=False)
    if not keys:
        return listed.returncode != 0 and "No such file or directory" in listed.stderr
    python_keys = conn.lookupByName(domain).authorizedSSHKeysGet(USER)
    return python_keys == keys and listed.stdout.strip() == "".join(keys)


def test_ssh_keys_add_remove_reset_checked_in_the_guest(
    qgactl, conn, lab_domain, keys_home, tmp_path
):
    raw, home = keys_home
    first, second, third = public_key(), public_key("ssh-rsa", "two"), public_key(comment="3")
    args = ("-c", lab_domain.uri, "-o", "json", "ssh-keys", lab_domain, USER)

    run = qgactl(*args)  # no authorized_keys file yet: no keys, not an error
    assert run.code == 0, run.stderr
    assert run.json() == {"user": USER, "keys": []} and same_as_virsh(conn, lab_domain, [])

    (tmp_path / "two.pub").write_text(f"{first}\n{second}\n")
    run = qgactl(*args, "--add", str(tmp_path / "two.pub"))
    assert run.code == 0, run.stderr
    assert guest_sh(raw, f"cat {home}/.ssh/authorized_keys").splitlines() == [first, second]
    mode_owner = guest_sh(raw, f"stat -c '%a %U' {home}/.ssh/authorized_keys").split()
    assert mode_owner == ["600", USER]
    assert sorted(run.json()["keys"]) == sorted([first, second])
    assert same_as_virsh(conn, lab_domain, run.json()["keys"])

    (tmp_path / "first.pub").write_text(first + "\n")
    run = qgactl(*args, "--remove", str(tmp_path / "first.pub"))
    assert run.code == 0, run.stderr
    assert guest_sh(raw, f"cat {home}/.ssh/authorized_keys").splitlines() == [second]

    run = qgactl(*args, "--reset", "-", stdin=(third + "\n").encode())
    assert run.code == 0, run.stderr
    assert guest_sh(raw, f"cat {home}/.ssh/authorized_keys").splitlines() == [third]
    assert run.json()["keys"] == [third] and same_as_virsh(conn, lab_domain, [third])


def test_ssh_keys_unknown_user(qgactl, lab_domain):
    run = qgactl("-c", lab_domain.uri, "ssh-keys", lab_domain, "nosuch")
    assert run.code == 6, run.stderr
    assert "failed to lookup user 'nosuch'" in run.stderr


# -- set-password ------------------------------------------------------------------------------

PASSWORD = "correct horse é battery"


def shadow_hash(raw, user: str = USER) -> str:
    line = guest_sh(raw, f"grep '^{user}:' /etc/shadow")
    return line.split(":")[1]


def matches(password: str, hashed: str) -> bool:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt: gone in Python 3.13
        import crypt

        return crypt.crypt(password, hashed) == hashed


def test_set_password_changes_the_shadow_hash_and_never_shows_it(qgactl, conn, lab_domain):
    raw = libvirt_raw(conn.lookupByName(lab_domain))
    before = shadow_hash(raw)
    run = qgactl(
        "--debug", "-c", lab_domain.uri, "--transport", "libvirt", "set-password", lab_domain,
        USER, stdin=PASSWORD.encode() + b"\n",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    after = shadow_hash(raw)
    assert after != before and after.startswith("$6$") and matches(PASSWORD, after)
    [traced] = [
        line for line in run.stderr.splitlines() if '--> {"execute":"guest-set-user' in line
    ]
    assert '"password":"<redacted>"' in traced
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    for secret in (PASSWORD, encoded):
        assert secret not in run.stderr and secret not in run.stdout


def test_set_password_crypted_puts_the_hash_as_given(qgactl, conn, lab_domain):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt("another one", crypt.mksalt(crypt.METHOD_SHA512))
    raw = libvirt_raw(conn.lookupByName(lab_domain))
    args = ("-c", lab_domain.uri, "set-password", "--crypted", lab_domain, USER)
    run = qgactl(*args, stdin=hashed.encode() + b"\n")
    assert run.code == 0, run.stderr
    assert shadow_hash(raw) == hashed


def test_set_password_for_an_unknown_user(qgactl, lab_domain):
    run = qgactl("-c", lab_domain.uri, "set-password", lab_domain, "nosuch", stdin=b"pw\n")
    assert run.code == 6, run.stderr
    assert "failed to set user password" in run.stderr


# -- libvirt's agent error state (code 86) -------------------------------------------------------


@pytest.fixture(scope="module")
def broken_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """A throwaway domain whose agent, inside libvirt, is in error: a reply over 10 MiB."""
    for domain in throwaway("broken", dedicated=True):
        big_output = {
            "execute": "guest-exec",
            "arguments": {
                "path": "/bin/sh",
                "arg": ["-c", "head -c 11000000 /dev/zero"],
                "capture-output": True,
            },
        }
        exec_reply = virsh("qemu-agent-command", domain, json.dumps(big_output))
        pid = json.loads(exec_reply.stdout)["return"]["pid"]
        status = json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})
        give_up = time.monotonic() + 60
        # "exited": false until it has; then the reply carries 11 MB of base64: ~15 MB
        while (broke := virsh_agent(domain, status, "--timeout", "60")).returncode == 0:
            assert '"exited":false' in broke.stdout, "libvirt took a reply over 10 MiB"
            assert time.monotonic() < give_up, "head -c 11000000 never exited"
            time.sleep(0.5)
        assert "No complete agent response found in 10485760 bytes" in broke.stderr
        # libvirtd marks the agent in error a moment after that call has returned
        while "not available due to an error" not in (ping := virsh_ping(domain)).stderr:
            assert time.monotonic() < give_up, ping.stderr
            time.sleep(0.2)
        yield domain


def test_agent_in_error_is_exit_4_with_the_hint(qgactl, broken_domain):
    run = qgactl("-c", broken_domain.uri, "--transport", "libvirt", "ping", broken_domain)
    assert run.code == 4, run.stderr
    [line] = run.stderr.splitlines()
    assert "in error" in line and "qemu-ga restarts in the guest" in line
    assert "re-syncs" not in line and "timeout" not in line


def test_auto_falls_back_to_the_dedicated_socket(qgactl, broken_domain):
    run = qgactl("-c", broken_domain.uri, "-o", "json", "ping", broken_domain)
    assert run.code == 0, run.stderr
    [result] = run.json()
    assert result["ok"] and result["transport"] == "socket"


def test_doctor_names_the_error_state(qgactl, broken_domain):
    run = qgactl("-c", broken_domain.uri, "-o", "json", "doctor", broken_domain)
    assert run.code == 4, run.stdout
    checks = {check["check"]: check for check in run.json()["checks"]}
    assert checks["connected"]["status"] == "pass"  # libvirt's XML still says connected
    ping = checks["ping"]
    assert ping["status"] == "fail" and "in error" in ping["detail"]
    assert "the dedicated channel answered" in ping["detail"]
    assert "qemu-ga restarts in the guest" in ping["fix"]


def test_restarting_qemu_ga_in_the_guest_clears_it(qgactl, broken_domain):
    """What the hint says: restart the .0 qemu-ga (killed through the .1 agent; the lab's
    supervisor starts it again), and libvirt answers again. It takes a KILL: the agent is stuck
    writing the rest of the oversized reply and a TERM does not end it. Runs last: it repairs
    the domain."""
    kill_agent0 = (
        "for p in $(pidof qemu-ga); do grep -q guest_agent.0 /proc/$p/cmdline && kill -9 $p; done"
    )
    guest_sh(socket_raw(broken_domain.dedicated_socket), kill_agent0 + "; true")
    run = qgactl(
        "-c", broken_domain.uri, "--transport", "libvirt", "ping", "--wait", "60", broken_domain,
        timeout=120,
    )  # fmt: skip
    assert run.code == 0, run.stderr


# -- suspend -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sleeper(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """Suspended to RAM and woken by the test below (booted through the BIOS: a PVH-booted
    kernel does not resume from S3)."""
    yield from throwaway("sleep", dedicated=True, bzimage=True)


def test_suspend_ram_then_dompmwakeup(qgactl, conn, sleeper):
    run = qgactl("-c", sleeper.uri, "suspend", sleeper, "--mode", "ram", timeout=120)
    assert run.code == 0, run.stderr
    assert run.json()["wake"] == f"virsh dompmwakeup {sleeper}"
    give_up = time.monotonic() + 60
    while (state := virsh("domstate", sleeper).stdout.strip()) != "pmsuspended":
        assert time.monotonic() < give_up, state
        time.sleep(0.2)
    virsh("dompmwakeup", sleeper)  # what qgactl said to do
    assert virsh("domstate", sleeper).stdout.strip() == "running"
    # The guest's agents run on, but libvirt saw their ports close for the sleep and not open
    # again (both channels stay 'disconnected'): ask the dedicated socket.
    args = ("-c", sleeper.uri, "--transport", "socket", "ping", "--wait", "60", sleeper)
    run = qgactl(*args, timeout=120)
    assert run.code == 0, run.stderr


@pytest.fixture(scope="module")
def no_s3(libvirt_ready: str) -> Iterator[str]:
    """Defined (not started) with S3 hidden from the guest: <pm><suspend-to-mem enabled='no'/>."""
    name = lab.test_domain_name("nos3")
    xml = lab.domain_xml(name).replace(
        "<devices>", "<pm><suspend-to-mem enabled='no'/></pm>\n  <devices>", 1
    )
    lab.define_and_start(name, xml, define_only=True)
    try:
        yield name
    finally:
        lab.destroy_and_undefine(name)


@pytest.mark.parametrize("mode", ["ram", "hybrid"])
def test_suspend_refused_where_the_machine_cant_wake_up(qgactl, no_s3, mode):
    assert "suspend-to-mem enabled='no'" in virsh("dumpxml", no_s3).stdout
    run = qgactl("-c", lab.URI, "suspend", no_s3, "--mode", mode)
    assert run.code == 2, run.stderr
    [line] = run.stderr.splitlines()
    assert f"can't wake up from suspend-to-{mode}" in line and "--mode disk" in line
