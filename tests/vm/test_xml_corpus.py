"""xmlgen on domain XMLs that other software wrote: virt-install's and libvirt's own.

Each case asks ``virt-install --print-xml`` (Debian's virtinst, through the real libvirtd, so
machine types and firmware are what this host really offers) for a domain, then checks that
add_agent_channel's output validates against libvirt's schema (``virt-xml-validate``), keeps
every element of the input, is idempotent, round-trips through remove_agent_channel, and that
libvirtd accepts it: defined as ``qgactl-test-corpus-<pid>-<case>`` (undefined in a finally).
The define step then runs qgactl's real flow on libvirt's own re-serialization
(``XMLDesc(INACTIVE)``: single quotes, explicit controllers and addresses).

vm tier: needs virt-install, virt-xml-validate and libvirtd (started through lab.ensure_libvirtd
when it is not running). Missing tools FAIL these tests; they never skip. No domain is started.
"""

from __future__ import annotations

import collections
import difflib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from qgactl.xmlgen import (
    DEFAULT_CHANNEL,
    Channel,
    add_agent_channel,
    list_channels,
    remove_agent_channel,
)

pytestmark = pytest.mark.vm

URI = "qemu:///system"
PREFIX = f"qgactl-test-corpus-{os.getpid()}-"
DEDICATED_SOCKET = "/var/lib/qgactl/corpus.qga1.sock"

# case -> (virt-install arguments, does add_agent_channel change the XML?)
CORPUS: dict[str, tuple[str, bool]] = {
    # i440fx + SPICE: virt-install adds spice's vdagent channel, no controller, no agent.
    "pc-spice-win10": ("--osinfo win10 --machine pc --import", True),
    # q35 + UEFI (firmware autoselection: needs the ovmf package) + SPICE, hyperv features.
    "q35-uefi-spice-win11": ("--osinfo win11 --boot uefi --import", True),
    # q35 without graphics or any channel: a serial console only.
    "q35-headless-fedora37": ("--osinfo fedora37 --graphics none --channel none --import", True),
    # q35 + UEFI + SPICE, no default channels.
    "q35-uefi-debian11": ("--osinfo debian11 --boot uefi --channel none --import", True),
    # i440fx + VNC, an OS without virtio-serial defaults.
    "pc-vnc-freebsd13": ("--osinfo freebsd13.1 --machine pc --graphics vnc --import", True),
    # Direct kernel boot (like qgactl's lab guest), a virtio console on virtio-serial port 0
    # and a dedicated agent channel .1 already there: .0 is added next to it.
    "q35-kernel-virtio-console-dedicated": (
        "--osinfo generic --machine q35 --graphics none --network none"
        " --boot kernel=/var/lib/qgactl/vmlinuz,initrd=/var/lib/qgactl/initrd.img,"
        "kernel_args=console=hvc0"
        " --console pty,target.type=virtio"
        " --channel unix,target.type=virtio,target.name=org.qemu.guest_agent.1,"
        f"source.mode=bind,source.path={DEDICATED_SOCKET}",
        True,
    ),
    # virt-install already adds the agent channel for a modern Linux: nothing to do.
    "pc-ubuntu2204-agent-present": ("--osinfo ubuntu22.04 --machine pc --import", False),
    # q35 + UEFI + SPICE with an explicit spicevmc channel, CentOS Stream.
    "q35-uefi-centos9-spicevmc": (
        "--osinfo centos-stream9 --boot uefi --channel spicevmc --import",
        True,
    ),
}


def need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: install it with `bash lab/install-deps.sh`"
    return path


def virt_install(case: str) -> str:
    args = CORPUS[case][0].split()
    common = ["--connect", URI, "--print-xml", "--name", PREFIX + case, "--virt-type", "qemu"]
    common += ["--memory", "512", "--vcpus", "1", "--disk", "none", "--noautoconsole"]
    proc = subprocess.run(
        [need("virt-install"), *common, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"virt-install failed: {proc.stderr.strip()}"
    assert proc.stdout.lstrip().startswith("<domain"), proc.stdout[:200]
    return proc.stdout


def validate(xml: str, tmp_path: Path, label: str) -> None:
    path = tmp_path / f"{label}.xml"
    path.write_text(xml, encoding="utf-8")
    proc = subprocess.run(
        [need("virt-xml-validate"), str(path), "domain"], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"{label} does not validate: {proc.stdout}{proc.stderr}"


def elements(xml: str) -> collections.Counter[tuple[str, str, str]]:
    """The multiset of (element path, attributes, text) of a document."""
    counter: collections.Counter[tuple[str, str, str]] = collections.Counter()
    tree = etree.fromstring(xml.encode()).getroottree()
    for el in tree.iter():
        if isinstance(el.tag, str):
            path = "/".join(str(a.tag) for a in reversed(list(el.iterancestors())))
            attrs = repr(sorted(el.attrib.items()))
            counter[(f"{path}/{el.tag}", attrs, (el.text or "").strip())] += 1
    return counter


def added_tags(before: str, after: str) -> list[str]:
    old, new = elements(before), elements(after)
    assert old - new == collections.Counter(), "an input element was lost or altered"
    return sorted(path.rsplit("/", 1)[1] for (path, _a, _t) in (new - old).elements())


def inserted_lines(before: str, after: str) -> list[str]:
    """The lines AFTER adds to BEFORE; fails if the diff changes or deletes any line."""
    a, b = before.splitlines(), after.splitlines()
    inserted = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        assert op in ("equal", "insert"), f"{op}: {a[i1:i2]} -> {b[j1:j2]}"
        if op == "insert":
            inserted += b[j1:j2]
    return inserted


def agent(xml: str) -> list[Channel]:
    return [c for c in list_channels(xml) if c.name == DEFAULT_CHANNEL]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_xml(case: str, conn: Any, tmp_path: Path) -> None:
    import libvirt

    src = virt_install(case)
    validate(src, tmp_path, "input")  # the corpus itself is valid libvirt XML

    patch = add_agent_channel(src)
    assert patch.changed is CORPUS[case][1]
    if patch.changed:
        validate(patch.xml, tmp_path, "patched")
        expected = ["channel", "source", "target"] + ["controller"] * patch.added_controller
        assert added_tags(src, patch.xml) == sorted(expected)
        # Back out: the input again, plus the controller if one was added.
        removed = remove_agent_channel(patch.xml)
        assert added_tags(src, removed.xml) == ["controller"] * patch.added_controller
        if not patch.added_controller:
            assert removed.xml == src
    else:
        assert patch.xml is src
    assert agent(patch.xml) and agent(patch.xml)[0].type == "unix"

    again = add_agent_channel(patch.xml)
    assert again.xml == patch.xml and not again.changed

    name = PREFIX + case
    try:
        dom = conn.defineXML(patch.xml)
        assert dom.name() == name
        # qgactl's flow on libvirt's own XML: remove, define, add back, define.
        stored = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert [c.type for c in agent(stored)] == ["unix"]
        assert stored.startswith("<domain type='qemu'>")  # libvirt's style: single quotes
        without = remove_agent_channel(stored)
        assert without.changed and not agent(without.xml)
        dom = conn.defineXML(without.xml)
        stored = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert agent(stored) == []
        assert "<controller type='virtio-serial' index='0'>" in stored  # the controller stays
        back = add_agent_channel(stored)
        assert back.changed and not back.added_controller
        assert [line.strip() for line in inserted_lines(stored, back.xml)] == [
            "<channel type='unix'>",
            "<source mode='bind'/>",
            f"<target type='virtio' name='{DEFAULT_CHANNEL}'/>",
            "</channel>",
        ]
        dom = conn.defineXML(back.xml)
        assert [c.type for c in agent(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))] == ["unix"]
    finally:
        try:
            conn.lookupByName(name).undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError:
            pass


def test_corpus_covers_machines_firmware_and_graphics() -> None:
    """The corpus keeps its spread: pc and q35, UEFI, SPICE, VNC, none, 6+ XMLs."""
    flat = [args for args, _ in CORPUS.values()]
    assert len(CORPUS) >= 6
    assert any("--machine pc" in a for a in flat) and any("q35" in a for a in flat)
    assert sum("uefi" in a for a in flat) >= 2
    assert any("--graphics none" in a for a in flat) and any("vnc" in a for a in flat)
    assert len({a.split("--osinfo ")[1].split()[0] for a in flat}) >= 6
