"""xmlgen: golden in/out XML pairs, every refusal, idempotency, list_channels and qemu_args.

Golden pairs live in tests/unit/golden/<case>.in.xml and <case>.out.xml and are compared as
exact text: the patch must not touch a byte it did not add. ``add-*`` cases run
add_agent_channel, ``remove-*`` cases remove_agent_channel (with CASES' keyword arguments).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from qgactl.errors import ExitCode, XmlPatchRefused
from qgactl.wire import DEFAULT_CHANNEL
from qgactl.xmlgen import (
    Channel,
    Patch,
    add_agent_channel,
    disks_without_discard,
    guest_os_id,
    list_channels,
    qemu_args,
    remove_agent_channel,
)

GOLDEN = Path(__file__).parent / "golden"
DEDICATED = "org.qemu.guest_agent.1"

# case -> keyword arguments of the patch function
CASES: dict[str, dict[str, Any]] = {
    "add-no-devices": {},
    "add-empty-devices": {},
    "add-existing-controller": {},
    "add-spice-vdagent": {},
    "add-two-controllers": {},
    "add-agent-pty": {},
    "add-agent-unix-connect": {},
    "add-agent-unix-bind": {},
    "add-dedicated-only": {},
    "add-comments-namespaces": {},
    "add-one-line": {},
    "add-xml-declaration": {},
    "add-dedicated-address": {
        "name": DEDICATED,
        "path": "/var/lib/qgactl/pinned.qga1.sock",
        "address": (0, 0, 3),
    },
    "remove-agent": {},
    "remove-absent": {},
}
UNCHANGED = {"add-agent-pty", "add-agent-unix-connect", "add-agent-unix-bind", "remove-absent"}
ADDS_CONTROLLER = {
    "add-no-devices",
    "add-empty-devices",
    "add-comments-namespaces",
    "add-one-line",
    "add-xml-declaration",
}
ADD_CASES = sorted(case for case in CASES if case.startswith("add-"))
CHANGING_ADD_CASES = sorted(set(ADD_CASES) - UNCHANGED)


def read(case: str, kind: str = "in") -> str:
    return (GOLDEN / f"{case}.{kind}.xml").read_text(encoding="utf-8")


def patch(case: str, xml: str) -> Patch:
    function = remove_agent_channel if case.startswith("remove-") else add_agent_channel
    return function(xml, **CASES[case])


def signatures(xml: str) -> collections.Counter[tuple[str, str, str, str]]:
    """Every element, comment and PI as (ancestry, tag, attributes, text): a multiset."""
    root = etree.fromstring(xml.encode())
    nodes = [*root.itersiblings(preceding=True), *root.iter(), *root.itersiblings()]
    counter: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
    for node in nodes:
        path = "/".join(str(a.tag) for a in reversed(list(node.iterancestors())))
        is_element = isinstance(node.tag, str)
        tag = str(node.tag) if is_element else type(node).__name__
        attrs = repr(sorted(node.attrib.items())) if is_element else ""
        counter[(path, tag, attrs, (node.text or "").strip())] += 1
    return counter


# --- golden pairs -------------------------------------------------------------------------


def test_every_golden_file_belongs_to_a_case() -> None:
    files = {p.name for p in GOLDEN.iterdir()}
    expected = {f"{case}.{kind}.xml" for case in CASES for kind in ("in", "out")}
    assert files == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    src = read(case)
    result = patch(case, src)
    assert result.xml == read(case, "out")
    assert result.changed is (case not in UNCHANGED)
    assert result.added_controller is (case in ADDS_CONTROLLER)
    assert result.notes, "every patch explains itself"
    if not result.changed:
        assert result.xml is src  # the very same string, not a re-serialization


@pytest.mark.parametrize("case", sorted(UNCHANGED))
def test_unchanged_cases_say_why(case: str) -> None:
    notes = patch(case, read(case)).notes
    if case.startswith("add-"):
        assert notes[0].startswith(f"agent channel {DEFAULT_CHANNEL} already present (")
    else:
        assert notes == (f"no channel {DEFAULT_CHANNEL} in this domain",)


@pytest.mark.parametrize("case", CHANGING_ADD_CASES)
def test_add_keeps_every_input_node_and_adds_only_the_agent(case: str) -> None:
    src = read(case)
    out = patch(case, src).xml
    before, after = signatures(src), signatures(out)
    assert before - after == collections.Counter()  # nothing lost or altered
    added = sorted(tag for (_path, tag, _attrs, _text) in (after - before).elements())
    expected = ["channel", "source", "target"]
    expected += ["address"] if "address" in CASES[case] else []
    expected += ["controller"] if case in ADDS_CONTROLLER else []
    expected += ["devices"] if case == "add-no-devices" else []
    assert added == sorted(expected)


@pytest.mark.parametrize("case", ADD_CASES)
def test_add_is_idempotent(case: str) -> None:
    once = patch(case, read(case))
    twice = patch(case, once.xml)
    assert twice.xml == once.xml
    assert twice.changed is False
    assert twice.added_controller is False


@pytest.mark.parametrize("case", CHANGING_ADD_CASES)
def test_remove_undoes_add_except_the_controller(case: str) -> None:
    src = read(case)
    added = patch(case, src)
    removed = remove_agent_channel(added.xml, name=CASES[case].get("name", DEFAULT_CHANNEL))
    assert removed.changed
    if not added.added_controller:
        assert removed.xml == src
    else:
        # The controller stays: the result is the input plus exactly that controller.
        extra = signatures(removed.xml) - signatures(src)
        assert [tag for (_p, tag, _a, _t) in extra.elements()] in (
            ["controller"],
            ["devices", "controller"],
        )
        assert signatures(src) - signatures(removed.xml) == collections.Counter()
        controller = "<controller type='virtio-serial' index='0'/>"
        if case == "add-empty-devices":
            reopened = f"<devices>\n    {controller}\n  </devices>"
            assert removed.xml == src.replace("<devices/>", reopened)
        elif case == "add-one-line":
            assert removed.xml.replace(controller, "") == src


def test_remove_twice_is_a_no_op() -> None:
    once = remove_agent_channel(read("remove-agent"))
    twice = remove_agent_channel(once.xml)
    assert twice.changed is False
    assert twice.xml is once.xml


def test_new_lines_follow_crlf_line_endings() -> None:
    src = read("add-existing-controller").replace("\n", "\r\n")
    out = add_agent_channel(src).xml
    assert out == read("add-existing-controller", "out").replace("\n", "\r\n")
    assert "\n" not in out.replace("\r\n", "")


def test_controller_goes_before_channel_when_both_follow_the_same_device() -> None:
    src = (
        "<domain type='kvm'><devices>"
        "<emulator>/e</emulator><graphics type='vnc'/>"
        "</devices></domain>"
    )
    out = add_agent_channel(src).xml
    devices = etree.fromstring(out.encode()).find("devices")
    assert devices is not None
    assert [child.tag for child in devices] == ["emulator", "controller", "channel", "graphics"]


def test_new_devices_go_before_devices_libvirt_writes_after_them() -> None:
    src = (
        "<domain type='kvm'>\n  <devices>\n    <input type='tablet' bus='usb'/>\n  </devices>\n"
        "</domain>"
    )
    assert add_agent_channel(src).xml == (
        "<domain type='kvm'>\n"
        "  <devices>\n"
        "    <controller type='virtio-serial' index='0'/>\n"
        "    <channel type='unix'>\n"
        "      <source mode='bind'/>\n"
        f"      <target type='virtio' name='{DEFAULT_CHANNEL}'/>\n"
        "    </channel>\n"
        "    <input type='tablet' bus='usb'/>\n"
        "  </devices>\n"
        "</domain>"
    )


def test_a_flush_left_document_gets_two_space_indentation_inside_new_elements() -> None:
    src = "<domain type='kvm'>\n<devices>\n</devices>\n</domain>\n"
    assert add_agent_channel(src).xml == (
        "<domain type='kvm'>\n"
        "<devices>\n"
        "  <controller type='virtio-serial' index='0'/>\n"
        "  <channel type='unix'>\n"
        "    <source mode='bind'/>\n"
        f"    <target type='virtio' name='{DEFAULT_CHANNEL}'/>\n"
        "  </channel>\n"
        "</devices>\n"
        "</domain>\n"
    )


def test_channel_goes_after_the_last_channel_even_out_of_libvirt_order() -> None:
    src = read("add-comments-namespaces").replace(
        '<console type="pty"></console>',
        '<channel type="pty"><target type="virtio" name="x.y"/></channel>'
        '<input type="mouse" bus="ps2"/><console type="pty"></console>',
    )
    names = [
        channel.get("name")
        for channel in etree.fromstring(add_agent_channel(src).xml.encode()).iterfind(
            "devices/channel/target"
        )
    ]
    assert names == ["x.y", DEFAULT_CHANNEL]
    assert '</channel>\n\t\t<channel type="unix">' in add_agent_channel(src).xml


def test_attribute_values_are_escaped_in_the_documents_quote_style() -> None:
    path = '/srv/it\'s & <odd> "dir"/qga.sock'
    for quote in ("'", '"'):
        src = f"<domain type={quote}kvm{quote}>\n  <devices>\n  </devices>\n</domain>\n"
        out = add_agent_channel(src, name=DEDICATED, path=path).xml
        assert f"type={quote}unix{quote}" in out
        assert list_channels(out) == [Channel(DEDICATED, "unix", "bind", path, None)]


def test_path_and_address_survive_a_parse() -> None:
    out = add_agent_channel(read("add-dedicated-address"), **CASES["add-dedicated-address"]).xml
    root = etree.fromstring(out.encode())
    address = root.find(f"devices/channel/target[@name='{DEDICATED}']/../address")
    assert address is not None
    assert dict(address.attrib.items()) == {
        "type": "virtio-serial",
        "controller": "0",
        "bus": "0",
        "port": "3",
    }


def test_existing_channel_with_another_path_is_kept_and_noted() -> None:
    result = add_agent_channel(read("add-dedicated-only"), name=DEDICATED, path="/tmp/other.sock")
    assert result.changed is False
    assert "its socket is /var/lib/qgactl/direct.qga1.sock, not /tmp/other.sock" in result.notes[1]


def test_added_channel_is_listed() -> None:
    out = add_agent_channel(read("add-spice-vdagent")).xml
    assert list_channels(out) == [
        Channel("com.redhat.spice.0", "spicevmc", None, None, None),
        Channel(DEFAULT_CHANNEL, "unix", "bind", None, None),
    ]


def test_missing_controller_index_counts_as_the_lowest_free_one() -> None:
    src = read("add-two-controllers").replace(" index='1'", "")
    result = add_agent_channel(src, name=DEDICATED, path="/tmp/q.sock", address=(1, 0, 2))
    assert result.changed and not result.added_controller


def test_pinned_address_names_the_new_controller() -> None:
    result = add_agent_channel(read("add-no-devices"), address=(2, 0, 1))
    assert result.added_controller
    assert "<controller type='virtio-serial' index='2'/>" in result.xml


# --- list_channels ------------------------------------------------------------------------

AGENT_SOCKET = "/var/lib/libvirt/qemu/channel/target/domain-3-vm1/org.qemu.guest_agent.0"
LIVE = f"""<domain type='kvm' id='3'>
  <name>vm1</name>
  <devices>
    <console type='pty' tty='/dev/pts/3'>
      <source path='/dev/pts/3'/>
      <target type='virtio' port='0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='{AGENT_SOCKET}'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/qgactl/vm1.qga1.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.1' state='disconnected'/>
    </channel>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0' state='disconnected'/>
    </channel>
    <channel type='pty'>
      <source path='/dev/pts/4'/>
      <target type='guestfwd' address='10.0.2.1' port='4600'/>
    </channel>
    <channel type='pty'>
      <target type='virtio'/>
    </channel>
  </devices>
</domain>
"""


def test_list_channels_on_live_xml() -> None:
    assert list_channels(LIVE) == [
        Channel("org.qemu.guest_agent.0", "unix", "bind", AGENT_SOCKET, "connected"),
        Channel(
            "org.qemu.guest_agent.1",
            "unix",
            "bind",
            "/var/lib/qgactl/vm1.qga1.sock",
            "disconnected",
        ),
        Channel("com.redhat.spice.0", "spicevmc", None, None, "disconnected"),
        Channel("", "pty", None, None, None),
    ]
    assert [c.is_agent for c in list_channels(LIVE)] == [True, True, False, False]


def test_list_channels_without_devices_and_of_other_domain_types() -> None:
    assert list_channels(read("add-no-devices")) == []
    assert list_channels("<domain type='xen'><devices/></domain>") == []  # reading is fine


def test_list_channels_refuses_what_is_not_a_domain() -> None:
    with pytest.raises(XmlPatchRefused, match="malformed"):
        list_channels("<domain>")
    with pytest.raises(XmlPatchRefused, match="not <domain>"):
        list_channels("<network/>")


# --- refusals -----------------------------------------------------------------------------

SPICE_ON_PORT_1 = read("add-spice-vdagent")


@pytest.mark.parametrize(
    ("xml", "kwargs", "message"),
    [
        (
            "<domain type='kvm'><name>x</domain>",
            {},
            "malformed domain XML: Opening and ending tag mismatch",
        ),
        ("", {}, "malformed domain XML: "),
        ("   \n", {}, "malformed domain XML: "),
        (
            "<domain type='kvm'>&nbsp;</domain>",
            {},
            "malformed domain XML: Entity 'nbsp' not defined",
        ),
        ("<?xml version='1.0'?>\n<!DOCTYPE domain>\n<domain type='kvm'/>", {}, "has a <!DOCTYPE>"),
        (
            "<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain type='kvm'>&e;</domain>",
            {},
            "has a <!DOCTYPE>",
        ),
        (
            "<network><name>default</name></network>",
            {},
            "the root element is <network>, not <domain>",
        ),
        ("<d:domain xmlns:d='urn:x' type='kvm'/>", {}, "the root element is <domain>"),
        ("<domain type='xen'><devices/></domain>", {}, "the domain has type 'xen'"),
        ("<domain type='lxc'/>", {}, "the domain has type 'lxc'"),
        ("<domain><devices/></domain>", {}, "the domain has no type attribute"),
        (
            "<domain type='kvm'><devices><channel type='pty'>"
            "<target type='xen' name='org.qemu.guest_agent.0'/></channel></devices></domain>",
            {},
            "channel name org.qemu.guest_agent.0 is already used by a xen target channel",
        ),
        (
            "<domain type='kvm'><devices><channel type='pty'><target type='guestfwd' "
            "address='10.0.2.1' port='4600' name='org.qemu.guest_agent.0'/></channel>"
            "</devices></domain>",
            {},
            "already used by a guestfwd target channel",
        ),
        (
            SPICE_ON_PORT_1,
            {"name": "com.redhat.spice.0", "path": "/tmp/s.sock"},
            "channel name com.redhat.spice.0 is already used by a spicevmc channel",
        ),
        (
            SPICE_ON_PORT_1,
            {"address": (0, 0, 1)},
            "virtio-serial port 0.0.1 is already taken by channel com.redhat.spice.0",
        ),
        (SPICE_ON_PORT_1, {"address": (0, 0, 0)}, "port 0.0.0 is reserved for a virtio console"),
        (SPICE_ON_PORT_1, {"address": (0, -1, 2)}, "invalid virtio-serial port 0.-1.2"),
        (SPICE_ON_PORT_1, {"address": (1, 0, 2)}, "has no virtio-serial controller 1"),
        (
            SPICE_ON_PORT_1,
            {"name": DEDICATED},
            f"channel {DEDICATED} needs an explicit socket path",
        ),
        (SPICE_ON_PORT_1, {"path": "qga.sock"}, "socket path 'qga.sock' is not absolute"),
        (SPICE_ON_PORT_1, {"name": "a,b", "path": "/tmp/x"}, "invalid channel name 'a,b'"),
        (SPICE_ON_PORT_1, {"name": ""}, "invalid channel name ''"),
        (
            read("add-dedicated-only"),
            {"name": "org.qemu.guest_agent.2", "path": "/var/lib/qgactl/direct.qga1.sock"},
            f"socket path /var/lib/qgactl/direct.qga1.sock is already used by channel {DEDICATED}",
        ),
        (
            read("add-two-controllers").replace("port='1'", "port='0x1z'"),
            {"address": (1, 0, 2)},
            "not a number in an <address> or <controller>: '0x1z'",
        ),
    ],
)
def test_add_refuses(xml: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(XmlPatchRefused) as info:
        add_agent_channel(xml, **kwargs)
    error = info.value
    assert message in error.message
    assert "\n" not in error.message
    assert error.hint
    assert error.exit_code == ExitCode.XML_REFUSED
    assert int(error.exit_code) == 8


def test_malformed_message_is_lxmls_in_one_line() -> None:
    with pytest.raises(XmlPatchRefused) as info:
        add_agent_channel("<domain type='kvm'>\n  <name>x</nam>\n</domain>\n")
    assert "line 2" in info.value.message


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<domain type='kvm'", "malformed domain XML"),
        ("<domain type='lxc'><devices/></domain>", "the domain has type 'lxc'"),
        (
            "<domain type='kvm'><devices><channel type='spicevmc'>"
            "<target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>",
            "is already used by a spicevmc channel",
        ),
    ],
)
def test_remove_refuses(xml: str, message: str) -> None:
    with pytest.raises(XmlPatchRefused, match=message):
        remove_agent_channel(xml)


# --- qemu_args ----------------------------------------------------------------------------


def test_qemu_args_default() -> None:
    assert qemu_args() == [
        "-device",
        "virtio-serial-pci,id=virtio-serial0",
        "-chardev",
        "socket,id=qga0,path=/tmp/qga.sock,server=on,wait=off",
        "-device",
        "virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,name=org.qemu.guest_agent.0",
    ]


def test_qemu_args_custom_name_and_a_path_with_a_comma() -> None:
    args = qemu_args(name=DEDICATED, path="/run/a,b/qga.sock")
    assert args[3] == "socket,id=qga0,path=/run/a,,b/qga.sock,server=on,wait=off"
    assert args[5].endswith(",name=org.qemu.guest_agent.1")


def test_qemu_args_refuses_a_relative_path() -> None:
    with pytest.raises(XmlPatchRefused, match="not absolute"):
        qemu_args(path="qga.sock")


def test_declared_encoding_and_non_ascii_text_are_kept() -> None:
    head = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<domain type="kvm">\n'
    head += "  <title>Café ☕</title>\n  <devices>\n"
    src = head + '    <console type="pty"/>\n  </devices>\n</domain>\n'
    assert add_agent_channel(src).xml == (
        head + '    <controller type="virtio-serial" index="0"/>\n'
        '    <console type="pty"/>\n'
        '    <channel type="unix">\n'
        '      <source mode="bind"/>\n'
        f'      <target type="virtio" name="{DEFAULT_CHANNEL}"/>\n'
        "    </channel>\n"
        "  </devices>\n</domain>\n"
    )


def test_disks_without_discard_names_each_disk_whose_discards_stop_in_qemu() -> None:
    xml = """<domain type='kvm'><name>vm1</name><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2' discard='unmap'/>
        <target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/>
        <target dev='vdb' bus='virtio'/></disk>
      <disk type='block' device='disk'><driver name='qemu' discard='ignore'/>
        <target dev='sda' bus='scsi'/></disk>
      <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
        <target dev='sdb' bus='sata'/></disk>
    </devices></domain>"""
    assert disks_without_discard(xml) == ["vdb", "sda"]


def test_guest_os_id_reads_virt_installs_libosinfo_metadata() -> None:
    xml = """<domain type='kvm'><name>vm1</name><metadata>
      <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
        <libosinfo:os id="http://debian.org/debian/12"/>
      </libosinfo:libosinfo></metadata><devices/></domain>"""
    assert guest_os_id(xml) == "http://debian.org/debian/12"
    assert guest_os_id("<domain type='kvm'><name>vm1</name></domain>") is None
