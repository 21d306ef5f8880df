"""fsinfo, disks and fstrim against the real lab guest (an ext4 disk on virtio-blk at
/mnt/data), through libvirt and through a socket; tables and JSON from the same replies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import libvirt
import libvirt_qemu
import pytest

from lab import lab

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@pytest.fixture(params=["libvirt", "plain"])
def target(request: pytest.FixtureRequest) -> list[str]:
    """qgactl's global options + DOMAIN (libvirt), or --socket of the plain-QEMU guest."""
    if request.param == "plain":
        return ["--socket", str(request.getfixturevalue("plain_qemu_guest").socket_path)]
    return ["--transport", "libvirt", str(request.getfixturevalue("lab_domain"))]


def run(qgactl: Any, target: list[str], command: str, *args: str, output: str = "json") -> Any:
    options, domain = (target, []) if "--socket" in target else (target[:-1], target[-1:])
    return qgactl(*options, "-o", output, command, *domain, *args)


def test_fsinfo_shows_the_data_disk(qgactl, target: list[str]) -> None:
    result = run(qgactl, target, "fsinfo")
    assert result.code == 0, result.stderr
    [data] = [fs for fs in result.json() if fs["mountpoint"] == "/mnt/data"]
    assert data["type"] == "ext4" and data["name"] == "vda"
    assert 0 <= data["used_bytes"] < data["total_bytes"] < 64 * 1024**2
    [disk] = data["disks"]
    assert (disk["bus_type"], disk["dev"]) == ("virtio", "/dev/vda")

    table = run(qgactl, target, "fsinfo", output="table")
    assert table.code == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if "/mnt/data" in line]
    assert "ext4" in row and "/dev/vda" in row and "MiB" in row and "virtio" in row


def test_fsinfo_raw_is_the_agents_reply(qgactl, target: list[str]) -> None:
    raw = run(qgactl, target, "fsinfo", output="raw")
    assert raw.code == 0, raw.stderr
    reply = json.loads(raw.stdout)
    assert any(fs["mountpoint"] == "/mnt/data" and "used-bytes" in fs for fs in reply["return"])


def test_disks_lists_vda(qgactl, target: list[str]) -> None:
    result = run(qgactl, target, "disks")
    assert result.code == 0, result.stderr
    [vda] = [disk for disk in result.json() if disk["name"] == "/dev/vda"]
    assert vda["partition"] is False and vda["address"]["bus_type"] == "virtio"
    table = run(qgactl, target, "disks", output="table")
    assert any("/dev/vda" in line and "virtio" in line for line in table.stdout.splitlines())


def test_fstrim_answers_for_the_data_disk(qgactl, target: list[str]) -> None:
    """QEMU 7.2's virtio-blk passes discard through: the guest's ext4 really trims. (On a
    disk without discard the agent reports an error for the path instead; both are answers.)"""
    result = run(qgactl, target, "fstrim")
    assert result.code == 0, result.stderr
    [path] = [entry for entry in result.json() if entry["path"] == "/mnt/data"]
    assert path["error"] is None, path
    assert isinstance(path["trimmed"], int) and path["trimmed"] >= 0

    minimum = run(qgactl, target, "fstrim", "--minimum", "65536")
    assert minimum.code == 0, minimum.stderr
    [path] = [entry for entry in minimum.json() if entry["path"] == "/mnt/data"]
    assert path["minimum"] >= 65536  # the effective minimum the guest reports

    table = run(qgactl, target, "fstrim", output="table")
    assert any("/mnt/data" in line for line in table.stdout.splitlines())


def _disks_without_discard(domain: lab.LabDomain) -> list[str]:
    """From the live XML (virsh dumpxml), not from qgactl."""
    disks = ElementTree.fromstring(domain.live_xml()).iterfind("devices/disk")
    return [
        disk.find("target").get("dev")  # type: ignore[union-attr]
        for disk in disks
        if disk.find("driver").get("discard") != "unmap"  # type: ignore[union-attr]
    ]


def test_fstrim_warns_about_disks_without_discard(qgactl, lab_domain: lab.LabDomain) -> None:
    """The lab's data disk has no discard='unmap': what the guest trims stays in the image."""
    assert _disks_without_discard(lab_domain) == ["vda"]
    result = qgactl("-o", "json", "fstrim", lab_domain)
    assert result.code == 0, result.stderr
    assert any(entry["path"] == "/mnt/data" for entry in result.json())
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"qgactl: warning: {lab_domain}: no discard='unmap' on disk vda:")
    assert f"virsh edit {lab_domain}" in warning and "<driver ... discard='unmap'/>" in warning


def test_fstrim_says_nothing_when_every_disk_discards(
    qgactl, lab_domain_discard: lab.LabDomain
) -> None:
    assert _disks_without_discard(lab_domain_discard) == []
    result = qgactl("-o", "json", "fstrim", lab_domain_discard)
    assert result.code == 0, result.stderr
    assert result.stderr == ""


def test_fstrim_through_a_socket_has_no_xml_and_says_nothing(qgactl, plain_qemu_guest) -> None:
    result = qgactl("--socket", str(plain_qemu_guest.socket_path), "-o", "json", "fstrim")
    assert result.code == 0, result.stderr
    assert result.stderr == ""


def test_fstrim_minimum_must_be_a_byte_count(qgactl, target: list[str]) -> None:
    result = run(qgactl, target, "fstrim", "--minimum", "-1")
    assert result.code == 2
    assert "Traceback" not in result.stderr


@pytest.fixture
def frozen_lab_domain(lab_domain: lab.LabDomain) -> Iterator[str]:
    """The lab domain frozen through libvirt, and thawed again whatever the test does."""
    assert lab_domain.startswith("qgactl-test-")  # a lab guest, never the host
    conn = libvirt.open(lab_domain.uri)
    dom = conn.lookupByName(lab_domain)

    def call(execute: str) -> Any:
        request = json.dumps({"execute": execute})
        return json.loads(libvirt_qemu.qemuAgentCommand(dom, request, 30, 0))["return"]

    try:
        assert call("guest-fsfreeze-freeze") >= 1
        yield str(lab_domain)
    finally:
        call("guest-fsfreeze-thaw")
        assert call("guest-fsfreeze-status") == "thawed"
        conn.close()


def test_fstrim_on_a_frozen_guest_says_how_to_thaw(qgactl, frozen_lab_domain: str) -> None:
    result = qgactl("--transport", "libvirt", "fstrim", frozen_lab_domain)
    assert result.code == 6
    assert "frozen" in result.stderr and "qgactl fsfreeze DOMAIN --thaw" in result.stderr
