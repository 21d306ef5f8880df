"""Fixtures for the slow tier: a real test guest under plain QEMU and under libvirtd.

Every guest is booted ONCE per session (boots compete for 2 cores) and cleaned up at the end
(QEMU stopped by PID, libvirt domains destroyed + undefined by name).  Domain names are
``qgactl-test-<pytest pid>-<suffix>``; leftovers of dead sessions are removed at start
(lab.cleanup_stale), other sessions' domains are never touched.

Nothing is skipped: a missing qemu, libvirtd, kernel or build step fails the test loudly.

Fixtures (all session-scoped):
    lab_paths                 lab.Paths of the built guest (kernel, initrd, data_img, ...)
    plain_qemu_guest          lab.PlainQemuGuest, agent answering: .socket_path (.0),
                              .dedicated_socket (.1), .qmp_path, .console_log, .pid
    plain_qemu_guest10        the same with flavour "qga10": Debian 13's qemu-ga 10.0
    blocked_guest             lab.PlainQemuGuest whose qemu-ga blocks guest-exec and
                              guest-file-open (RHEL's default config blocks both)
    libvirt_ready             "qemu:///system" once libvirtd answers
    conn                      a libvirt-python connection to it
    lab_domain                lab.LabDomain (a str: the domain name) running, agent answering
                              on the libvirt-held .0; .dedicated_socket = path of the .1 socket
                              (direct clients); .uri .console_log .dir .boot_seconds
    lab_domain10              the same with flavour "qga10": Debian 13's qemu-ga 10.0
    debian_domain             LabDomain, flavour "debian12": a real Debian 12 (systemd, Debian's
                              qemu-guest-agent 7.2, bash, python3, script, vi); built once into
                              lab.DEBIAN_CACHE by lab/build-debian.sh (~2 min), boots in 15-30 s
    lab_domain_discard        LabDomain running whose data disk has <driver discard='unmap'/>
    domain_off                LabDomain defined and shut off (agent channel configured)
    domain_no_channel         LabDomain running, no agent channel (virtio-serial controller only)
    second_host               lab.SecondLibvirtd: a second libvirtd; .uri reaches it
    second_host_domain        LabDomain running with an agent on the second host
    domain_agent_not_started  LabDomain running with the .0 channel, kernel flag qgactl.noagent:
                              libvirt says "not connected"; call .wait_console() to be sure the
                              guest has finished booting
What every guest reports (2 vCPUs, eth0, user qgauser, time zone IST...): lab/lab.py's docstring.
The lab module itself is importable in tests as `from lab import lab` (the repo root is put on
sys.path here).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VM_DIR = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab import lab  # noqa: E402  (lab/ is a package; lab/lab.py is the VM lab module)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.parent == VM_DIR or VM_DIR in path.parents:
            item.add_marker(pytest.mark.vm)


def _fail(what: str, err: BaseException) -> None:
    pytest.fail(f"{what}: {err}", pytrace=False)


def _require(*tools: str) -> None:
    missing = [t for t in tools if lab.which(t) is None]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: run `bash lab/install-deps.sh` (as root)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def lab_paths() -> lab.Paths:
    _require("qemu-system-x86_64", "qemu-ga", "busybox", "depmod", "cpio", "mkfs.ext4")
    try:
        return lab.build_guest()
    except lab.LabError as e:
        _fail("building the lab guest failed", e)
        raise  # unreachable


def _plain_guest(what: str, workdir: Path, **kwargs: object) -> Iterator[lab.PlainQemuGuest]:
    guest = lab.PlainQemuGuest(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        guest.start()
    except lab.LabError as e:
        guest.stop()
        _fail(f"{what} did not come up", e)
    try:
        yield guest
    finally:
        guest.stop()


@pytest.fixture(scope="session")
def plain_qemu_guest(
    lab_paths: lab.Paths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[lab.PlainQemuGuest]:
    yield from _plain_guest(
        "plain QEMU guest", tmp_path_factory.mktemp("plain-qemu"), dedicated=True
    )


@pytest.fixture(scope="session")
def plain_qemu_guest10(
    lab_paths: lab.Paths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[lab.PlainQemuGuest]:
    yield from _plain_guest(
        "plain QEMU guest (qemu-ga 10.0)",
        tmp_path_factory.mktemp("plain-qemu10"),
        dedicated=True,
        flavour="qga10",
    )


@pytest.fixture(scope="session")
def blocked_guest(
    lab_paths: lab.Paths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[lab.PlainQemuGuest]:
    yield from _plain_guest(
        "plain QEMU guest (blocked agent)",
        tmp_path_factory.mktemp("blocked"),
        block="guest-exec,guest-file-open",
    )


@pytest.fixture(scope="session")
def libvirt_ready(lab_paths: lab.Paths) -> str:
    _require("virsh", "libvirtd", "virtlogd")
    try:
        lab.ensure_libvirtd()
        lab.cleanup_stale()
    except lab.LabError as e:
        _fail("libvirtd is not available", e)
    return lab.URI


@pytest.fixture(scope="session")
def conn(libvirt_ready: str) -> Iterator[object]:
    """A libvirt-python connection to the lab's libvirtd, errors not printed on stderr."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connection = libvirt.open(libvirt_ready)
    try:
        yield connection
    finally:
        connection.close()


def _domain(suffix: str, uri: str = lab.URI, **kwargs: object) -> Iterator[lab.LabDomain]:
    name = lab.test_domain_name(suffix)
    try:
        dom = lab.start_domain(name, uri=uri, **kwargs)  # type: ignore[arg-type]
    except lab.LabError as e:
        lab.destroy_and_undefine(name, uri=uri)
        _fail(f"libvirt domain {name} did not come up", e)
    try:
        yield dom
    finally:
        lab.destroy_and_undefine(name, uri=uri)


@pytest.fixture(scope="session")
def lab_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    yield from _domain("lab", dedicated=True)


@pytest.fixture(scope="session")
def second_host(
    libvirt_ready: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[lab.SecondLibvirtd]:
    """A second real libvirt host (its own libvirtd in a private mount namespace)."""
    _require("unshare")
    host = lab.SecondLibvirtd(tmp_path_factory.mktemp("host2"))
    try:
        host.start()
    except (lab.LabError, OSError, subprocess.SubprocessError) as e:
        host.stop()
        _fail("the second libvirtd did not start", e)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def second_host_domain(second_host: lab.SecondLibvirtd) -> Iterator[lab.LabDomain]:
    """A running lab domain with an agent on the second host."""
    yield from _domain("host2", uri=second_host.uri)


@pytest.fixture(scope="session")
def lab_domain_discard(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    """A running lab domain whose data disk has <driver discard='unmap'/>."""
    yield from _domain("discard", discard=True)


@pytest.fixture(scope="session")
def lab_domain10(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    yield from _domain("lab10", dedicated=True, flavour="qga10")


@pytest.fixture(scope="session")
def debian_domain(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    _require("debootstrap", "qemu-img", "mkfs.ext4")
    yield from _domain("deb12", flavour=lab.DEBIAN)


@pytest.fixture(scope="session")
def domain_off(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    yield from _domain("off", start=False)


@pytest.fixture(scope="session")
def domain_no_channel(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    yield from _domain("nochan", agent_channel=False)


@pytest.fixture(scope="session")
def domain_agent_not_started(libvirt_ready: str) -> Iterator[lab.LabDomain]:
    yield from _domain("noagent", noagent=True)
