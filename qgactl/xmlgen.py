"""The guest agent's devices in a libvirt domain XML: pure ``str -> str``, never calls libvirt.

What it does
    * ``list_channels``: the virtio channels of a domain XML (on the live XML: the agent's
      socket path and ``target/@state``).
    * ``add_agent_channel`` / ``remove_agent_channel``: add or remove the agent's
      ``<channel type='unix'>`` (and, only when the domain has none, a virtio-serial
      ``<controller>``), returning a ``Patch`` with the new document and human notes.
    * ``channel_elements``: a channel's element as the document has it (what
      attachDeviceFlags / detachDeviceFlags take).
    * ``qemu_args``: the same devices as bare-QEMU command-line words.
    * ``suspend_states``: what ``<pm>`` says of S3 and S4 (``qgactl suspend`` reads it).
    * ``disks_without_discard``: disks whose discards never reach the image (``fstrim``).
    * ``guest_os_id``: the guest's OS from libosinfo's metadata (``doctor``'s fixes).

What it does not do
    Talk to libvirt (discover.py reads XMLDesc, cli.py defines or hot-plugs), validate against
    libvirt's schema, or re-format anything it did not add.

How an edit keeps the rest of the document
    lxml parses the document (with a parser that resolves no entities and fetches nothing) and
    answers every question about it. The edit itself is a splice of the ORIGINAL text at the
    character ranges of the elements involved: re-serializing the tree would rewrite libvirt's
    single-quoted attributes as double-quoted ones, ``<x></x>`` as ``<x/>`` and character
    references as characters, so a diff of the result would touch every line. Spliced, only the
    new (or removed) lines differ; an unchanged document is returned as the very same string.
    New elements copy the document's indentation, line endings and attribute quote style, and
    go where libvirt itself writes them (``_DEVICE_ORDER``). The output is re-parsed as a check.

Every refusal raises ``XmlPatchRefused`` (exit code 8) with a one-line message and a hint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from qgactl.errors import XmlPatchRefused
from qgactl.wire import AGENT_PREFIX, DEFAULT_CHANNEL

if TYPE_CHECKING:
    from lxml import etree


# libvirt's qemu driver runs domains of these types; xen, lxc, test... have no QEMU guest agent
# channel (hvf is QEMU on macOS' Hypervisor.framework).
_QEMU_TYPES = ("qemu", "kvm", "hvf")

# Channel backends that are not a socket anyone could speak the agent protocol on: they carry
# the SPICE agent protocol to a SPICE client or to QEMU's own clipboard agent.
_NOT_AGENT_BACKENDS = ("spicevmc", "qemu-vdagent")

# The order libvirt writes <devices> children in (virDomainDefFormatInternal; checked on
# libvirt 9.0 by defining a domain with the devices shuffled and reading it back).
_DEVICE_ORDER = (
    "emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard",
    "serial", "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio",
    "video", "hostdev", "redirdev", "redirfilter", "hub", "watchdog", "memballoon", "rng",
    "nvram", "panic", "shmem", "memory", "iommu", "vsock", "crypto",
)  # fmt: skip
# The same for <domain>'s children: only needed when a domain has no <devices> at all.
_DOMAIN_ORDER = (
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
    "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
    "iothreadids", "defaultiothread", "cputune", "numatune", "resource", "sysinfo",
    "bootloader", "bootloader_args", "os", "idmap", "features", "cpu", "clock", "on_poweroff",
    "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel", "keywrap",
    "launchSecurity",
)  # fmt: skip

# Port names end up in QEMU's comma-separated option syntax (qemu_args) and in file names.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class Channel(NamedTuple):
    """One ``devices/channel`` with a virtio target, as the domain XML describes it."""

    name: str  # target/@name ("" when the XML gives none)
    type: str  # the backend: unix, pty, spicevmc...
    mode: str | None  # source/@mode: bind or connect
    path: str | None  # source/@path (the live XML always has one for unix channels)
    state: str | None  # target/@state in the live XML: connected or disconnected

    @property
    def is_agent(self) -> bool:
        return self.name.startswith(AGENT_PREFIX)


class Patch(NamedTuple):
    """The result of an edit; ``xml is`` the input string itself when nothing changed."""

    xml: str
    changed: bool
    added_controller: bool = False
    notes: tuple[str, ...] = ()


def list_channels(xml: str) -> list[Channel]:
    """Every ``devices/channel`` whose ``<target>`` is virtio, in document order."""
    root = _parse(xml)
    channels = []
    for ch in root.iterfind("devices/channel"):
        target = ch.find("target")
        if target is None or target.get("type") != "virtio":
            continue
        source = ch.find("source")
        channels.append(
            Channel(
                name=target.get("name", ""),
                type=ch.get("type", ""),
                mode=None if source is None else source.get("mode"),
                path=None if source is None else source.get("path"),
                state=target.get("state"),
            )
        )
    return channels


def suspend_states(xml: str) -> dict[str, bool | None]:
    """``<pm><suspend-to-mem enabled='no'/>...``: {"suspend-to-mem": False, ...}; None where
    the XML says nothing (the hypervisor's default: both on for QEMU's pc and q35)."""
    pm = _parse(xml).find("pm")
    states: dict[str, bool | None] = {}
    for name in ("suspend-to-mem", "suspend-to-disk"):
        element = None if pm is None else pm.find(name)
        enabled = None if element is None else element.get("enabled")
        states[name] = None if enabled is None else enabled == "yes"
    return states


def disks_without_discard(xml: str) -> list[str]:
    """The disks (target dev, e.g. "vda") whose ``<driver>`` lacks ``discard='unmap'``: a
    guest's fstrim frees nothing in their image on the host (QEMU ignores the discards)."""
    disks = []
    for disk in _parse(xml).iterfind("devices/disk"):
        if disk.get("device", "disk") != "disk":
            continue  # cdrom, floppy, lun
        driver, target = disk.find("driver"), disk.find("target")
        if driver is None or driver.get("discard") != "unmap":
            disks.append("?" if target is None else target.get("dev", "?"))
    return disks


# libosinfo's namespace: virt-install and virt-manager record the guest's OS with it.
_LIBOSINFO = "{http://libosinfo.org/xmlns/libvirt/domain/1.0}"


def guest_os_id(xml: str) -> str | None:
    """The guest's OS as its domain XML records it (libosinfo, e.g.
    "http://debian.org/debian/12"), or None."""
    element = _parse(xml).find(f"metadata/{_LIBOSINFO}libosinfo/{_LIBOSINFO}os")
    return None if element is None else element.get("id")


def add_agent_channel(
    xml: str,
    *,
    name: str = DEFAULT_CHANNEL,
    path: str | None = None,
    address: tuple[int, int, int] | None = None,
) -> Patch:
    """Add ``<channel type='unix'><source mode='bind'/><target type='virtio' name=NAME/>``.

    A virtio-serial controller is added too when the domain has none. A channel already
    carrying NAME (pty, unix connect or bind...) leaves the document unchanged. ``path`` is the
    socket's path (libvirt chooses one when it is None; required for a non-default name, so
    that qgactl can reach the dedicated channel directly); ``address`` pins
    (controller, bus, port) instead of letting libvirt assign them.
    """
    _check_name(name)
    if path is not None:
        _check_path(path)
    elif name != DEFAULT_CHANNEL:
        raise XmlPatchRefused(
            f"channel {name} needs an explicit socket path",
            hint="pass --path /some/dir/qga.sock in a directory the QEMU user can write; "
            "libvirt holds only org.qemu.guest_agent.0 itself",
        )
    doc = _Doc(xml, patching=True)
    devices = doc.root.find("devices")
    notes: list[str] = []

    existing = _find_channels(devices, name)
    if existing:
        ch = existing[0]
        notes.append(f"agent channel {name} already present ({_describe(ch)})")
        old_path = _source_path(ch)
        if path is not None and old_path != path:
            notes.append(
                f"its socket is {old_path or 'chosen by libvirt'}, not {path}: "
                "remove the channel first to change it"
            )
        return Patch(xml, changed=False, notes=tuple(notes))

    if path is not None and devices is not None:
        for src in devices.iterfind("*/source[@path]"):
            if src.get("path") == path:
                raise XmlPatchRefused(
                    f"socket path {path} is already used by {_label(_parent(src))}",
                    hint="choose another --path",
                )

    controllers = _virtio_serial_indexes(devices)
    if address is not None:
        _check_address(devices, controllers, address)

    new: list[_New] = []
    if not controllers:
        # Controller indexes are counted per controller type, so with no virtio-serial
        # controller at all, index 0 (or the one the pinned address names) is free.
        index = address[0] if address is not None else 0
        new.append(_New("controller", [("type", "virtio-serial"), ("index", str(index))]))
        notes.append(f"added a virtio-serial controller (index {index})")
    source = [("mode", "bind")] + ([("path", path)] if path is not None else [])
    children = [_New("source", source), _New("target", [("type", "virtio"), ("name", name)])]
    where = f"socket {path}" if path is not None else "socket path chosen by libvirt"
    if address is not None:
        keys = ("controller", "bus", "port")
        children.append(_New("address", [("type", "virtio-serial"), *zip(keys, map(str, address))]))
        where += ", virtio-serial port {}.{}.{}".format(*address)
    new.append(_New("channel", [("type", "unix")], tuple(children)))
    notes.append(f"added agent channel {name} (unix, bind, {where})")

    if devices is None:
        edits = [doc.insert(doc.root, _New("devices", [], tuple(new)), _DOMAIN_ORDER)]
    elif not any(_is_element(child) for child in devices):
        edits = [doc.fill(devices, new)]
    else:
        edits = [doc.insert(devices, node, _DEVICE_ORDER) for node in new]
    added = sum(node.size() for node in new) + (1 if devices is None else 0)
    out = doc.apply(edits, delta=added)
    return Patch(out, changed=True, added_controller=not controllers, notes=tuple(notes))


def remove_agent_channel(xml: str, *, name: str = DEFAULT_CHANNEL) -> Patch:
    """Remove the channel(s) named NAME and the whitespace before each; controllers stay."""
    _check_name(name)
    doc = _Doc(xml, patching=True)
    found = _find_channels(doc.root.find("devices"), name)
    if not found:
        return Patch(xml, changed=False, notes=(f"no channel {name} in this domain",))
    edits = []
    for ch in found:
        start, end = doc.span(ch)[0], doc.span(ch)[3]
        edits.append(_Edit(start - len(doc.space_before(start)), end, ""))
    out = doc.apply(edits, delta=-sum(_count(ch) for ch in found))
    notes = tuple(f"removed channel {name} ({_describe(ch)})" for ch in found)
    return Patch(out, changed=True, notes=notes)


def channel_elements(xml: str, *, name: str = DEFAULT_CHANNEL) -> list[str]:
    """The text of each agent channel named NAME, exactly as XML has it (for hot-(un)plug)."""
    _check_name(name)
    doc = _Doc(xml, patching=False)
    spans = [doc.span(ch) for ch in _find_channels(doc.root.find("devices"), name)]
    return [xml[span[0] : span[3]] for span in spans]


def qemu_args(*, name: str = DEFAULT_CHANNEL, path: str = "/tmp/qga.sock") -> list[str]:
    """The bare-QEMU equivalent: a virtio-serial bus, a listening socket, the agent's port."""
    _check_name(name)
    _check_path(path)
    # QEMU's option syntax: a comma inside a value is written twice.
    chardev = f"socket,id=qga0,path={path.replace(',', ',,')},server=on,wait=off"
    return [
        "-device", "virtio-serial-pci,id=virtio-serial0",
        "-chardev", chardev,
        "-device", f"virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,name={name}",
    ]  # fmt: skip


# --- checks ------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise XmlPatchRefused(
            f"invalid channel name {name!r}",
            hint="use letters, digits, '.', '_' and '-', e.g. org.qemu.guest_agent.1",
        )


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise XmlPatchRefused(
            f"socket path {path!r} is not absolute",
            hint="give the full path, e.g. /var/lib/libvirt/qemu/channel/target/vm1.qga.sock",
        )


def _check_address(
    devices: etree._Element | None,
    controllers: Sequence[int],
    address: tuple[int, int, int],
) -> None:
    c, b, p = address
    where = f"virtio-serial port {c}.{b}.{p}"
    if min(address) < 0:
        raise XmlPatchRefused(f"invalid {where}", hint="controller, bus and port are >= 0")
    if p == 0:  # QEMU reserves port 0 of every virtio-serial bus for a virtio console
        raise XmlPatchRefused(f"{where} is reserved for a virtio console", hint="use port 1+")
    if controllers and c not in controllers:
        have = ", ".join(map(str, sorted(controllers)))
        raise XmlPatchRefused(
            f"{where}: the domain has no virtio-serial controller {c}",
            hint=f"use one of its controllers ({have}), or leave the address out",
        )
    if devices is None:
        return
    for addr in devices.iterfind("*/address[@type='virtio-serial'][@port]"):
        taken = tuple(_int(addr.get(k, "0")) for k in ("controller", "bus", "port"))
        if taken == address:
            raise XmlPatchRefused(
                f"{where} is already taken by {_label(_parent(addr))}",
                hint="choose another port, or leave the address out and let libvirt pick one",
            )


def _virtio_serial_indexes(devices: etree._Element | None) -> list[int]:
    """Indexes of the virtio-serial controllers; a missing index gets the lowest free one."""
    if devices is None:
        return []
    ctrls = devices.findall("controller[@type='virtio-serial']")
    used = [_int(c.get("index", "")) for c in ctrls if c.get("index") is not None]
    for _ in range(len(ctrls) - len(used)):
        used.append(min(set(range(len(ctrls) + 1)) - set(used)))
    return used


def _find_channels(devices: etree._Element | None, name: str) -> list[etree._Element]:
    """The channels whose target is NAME; refuse when NAME belongs to a non-agent channel."""
    found = []
    for ch in [] if devices is None else devices.iterfind("channel"):
        target = ch.find("target")
        if target is None or target.get("name") != name:
            continue
        if target.get("type") != "virtio":
            kind = f"{target.get('type')} target"
        elif ch.get("type") in _NOT_AGENT_BACKENDS:
            kind = str(ch.get("type"))
        else:
            found.append(ch)
            continue
        raise XmlPatchRefused(
            f"channel name {name} is already used by a {kind} channel, not an agent one",
            hint="choose another --name, or fix that channel by hand (virsh edit)",
        )
    return found


# --- small helpers -----------------------------------------------------------------------


def _int(text: str) -> int:
    try:
        return int(text, 0)  # libvirt writes some numbers in hex (0x0)
    except ValueError:
        raise XmlPatchRefused(
            f"not a number in an <address> or <controller>: {text!r}",
            hint="fix the domain XML",
        ) from None


def _is_element(node: etree._Element) -> bool:
    return isinstance(node.tag, str)  # comments and processing instructions are not


def _parent(el: etree._Element) -> etree._Element:
    parent = el.getparent()
    assert parent is not None  # only called on elements found below <devices>
    return parent


def _source_path(ch: etree._Element) -> str | None:
    source = ch.find("source")
    return None if source is None else source.get("path")


def _describe(ch: etree._Element) -> str:
    source = ch.find("source")
    parts = [ch.get("type", "?")]
    if source is not None:
        parts += [v for v in (source.get("mode"), source.get("path")) if v]
    return ", ".join(parts)


def _label(dev: etree._Element) -> str:
    target = dev.find("target")
    name = None if target is None else target.get("name")
    return f"{dev.tag} {name}" if name else f"a <{dev.tag}>"


def _count(el: etree._Element) -> int:
    return sum(1 for e in el.iter() if _is_element(e))


def _localname(el: etree._Element) -> str:
    """The tag without its namespace: "{uri}commandline" -> "commandline"."""
    return str(el.tag).rpartition("}")[2]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse(xml: str) -> etree._Element:
    """Parse safely; refuse anything that is not a well-formed ``<domain>`` document."""
    from lxml import etree  # here, not at the top: importing lxml costs ~15 ms of start-up

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        remove_blank_text=False,
        huge_tree=False,
        load_dtd=False,
        encoding="utf-8",  # we parse xml.encode(); this overrides any declared encoding
    )
    hint = "check the file (xmllint --noout FILE shows where it breaks)"
    try:
        root = etree.fromstring(xml.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, UnicodeEncodeError) as exc:
        raise XmlPatchRefused(f"malformed domain XML: {_one_line(str(exc))}", hint=hint) from None
    if root.getroottree().docinfo.internalDTD is not None:
        # libvirt never writes one, and a DTD could define entities: refuse rather than guess.
        raise XmlPatchRefused(
            "the domain XML has a <!DOCTYPE>", hint="remove it; libvirt never writes one"
        )
    if root.tag != "domain":
        raise XmlPatchRefused(
            f"the root element is <{_localname(root)}>, not <domain>",
            hint="give a libvirt domain XML (virsh dumpxml --inactive DOMAIN)",
        )
    return root


# --- splicing the original text ----------------------------------------------------------

# Markup in a document that lxml already accepted and that has no DOCTYPE: comments, CDATA,
# processing instructions (and the XML declaration), tags. Attribute values may contain '>'
# but never '<', so a tag is matched attribute by attribute.
_MARKUP = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
    r"|<(/?)([^\s/>]+)(?:\s+[^\s=]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>",
    re.DOTALL,
)
_QUOTE = re.compile(r"=\s*([\"'])")


class _New(NamedTuple):
    """An element to add, rendered in the document's own style."""

    tag: str
    attrs: list[tuple[str, str]]
    children: tuple[_New, ...] = ()

    def size(self) -> int:
        return 1 + sum(child.size() for child in self.children)


class _Edit(NamedTuple):
    start: int
    end: int
    text: str


class _Doc:
    """The original text, its lxml tree, and where each element sits in the text."""

    def __init__(self, xml: str, *, patching: bool) -> None:
        self.text = xml
        self.root = _parse(xml)
        if patching:
            kind = self.root.get("type")
            if kind not in _QEMU_TYPES:
                what = f"type {kind!r}" if kind is not None else "no type attribute"
                raise XmlPatchRefused(
                    f"the domain has {what}: the guest agent channel is for qemu or kvm domains",
                    hint="only QEMU/KVM domains (<domain type='kvm'> or 'qemu') have one",
                )
        self.elements = [e for e in self.root.iter() if _is_element(e)]
        self._index = {el: i for i, el in enumerate(self.elements)}  # the list keeps them alive
        self._spans = self._locate()
        self.nl = "\r\n" if "\r\n" in xml else "\n"
        quote = _QUOTE.search(xml, self._spans[0][0], self._spans[0][1])
        self.quote = quote.group(1) if quote else "'"  # libvirt writes '
        self.unit = self._indent_unit()

    def _locate(self) -> list[tuple[int, int, int, int]]:
        """(start, end of start tag, start of end tag, end) of every element, in lxml's order."""
        spans: list[list[int]] = []
        names: list[str] = []
        open_: list[int] = []
        for m in _MARKUP.finditer(self.text):
            if m.group(2) is None:
                continue  # comment, CDATA, processing instruction
            if m.group(1):  # </name>
                spans[open_.pop()][2:] = [m.start(), m.end()]
                continue
            spans.append([m.start(), m.end(), m.end(), m.end()])
            names.append(m.group(2))
            if not m.group(3):  # not <name/>
                open_.append(len(spans) - 1)
        expected = [
            f"{e.prefix}:{_localname(e)}" if e.prefix else _localname(e) for e in self.elements
        ]
        if names != expected or open_:
            raise XmlPatchRefused(  # a bug, not the user's: lxml accepted the document
                "internal error: could not locate the elements in the XML text",
                hint="report this as a qgactl bug, with the XML",
            )
        return [(a, b, c, d) for a, b, c, d in spans]

    def span(self, el: etree._Element) -> tuple[int, int, int, int]:
        return self._spans[self._index[el]]

    def space_before(self, pos: int) -> str:
        start = pos
        while start > 0 and self.text[start - 1] in " \t\r\n":
            start -= 1
        return self.text[start:pos]

    def indent(self, el: etree._Element) -> str | None:
        """The whitespace before EL on its line, or None when EL does not start a line."""
        pos = self.span(el)[0]
        prefix = self.text[self.text.rfind("\n", 0, pos) + 1 : pos]
        return prefix if not prefix.strip(" \t") else None

    def _indent_unit(self) -> str:
        """One level of indentation: the first child-minus-parent indent found."""
        for parent in self.elements:
            outer = self.indent(parent)
            for el in parent:
                inner = self.indent(el) if _is_element(el) else None
                if outer is None or inner is None or len(inner) <= len(outer):
                    continue
                if inner.startswith(outer):
                    return inner[len(outer) :]
        return "  "

    def render(self, node: _New, indent: str, pretty: bool) -> str:
        attrs = "".join(f" {key}={self._quoted(value)}" for key, value in node.attrs)
        if not node.children:
            return f"<{node.tag}{attrs}/>"
        inner = indent + self.unit
        lead = self.nl + inner if pretty else ""
        body = "".join(lead + self.render(child, inner, pretty) for child in node.children)
        close = self.nl + indent if pretty else ""
        return f"<{node.tag}{attrs}>{body}{close}</{node.tag}>"

    def _quoted(self, value: str) -> str:
        """VALUE as an attribute value in the document's quote style."""
        q = self.quote
        escapes = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#9;", "\n": "&#10;"}
        escapes.update({"\r": "&#13;", q: "&apos;" if q == "'" else "&quot;"})
        return q + "".join(escapes.get(char, char) for char in value) + q

    def insert(self, parent: etree._Element, node: _New, order: Sequence[str]) -> _Edit:
        """Put NODE among PARENT's children where libvirt would write it.

        After the last sibling with the same tag, else after the last one libvirt writes
        before it, else before the first one libvirt writes after it, else last.
        """
        children = [c for c in parent if _is_element(c)]
        if not children:
            return self.fill(parent, [node])
        rank = order.index(node.tag)
        known = [(c, order.index(c.tag)) for c in children if c.tag in order]
        same = [c for c, r in known if r == rank]
        earlier = [c for c, r in known if r < rank]
        later = [c for c, r in known if r > rank]
        if same or earlier or not later:
            anchor = (same or earlier or children)[-1]
            sep, indent = self._separator(anchor)
            end = self.span(anchor)[3]
            return _Edit(end, end, sep + self.render(node, indent, sep.startswith(self.nl)))
        anchor = later[0]
        sep, indent = self._separator(anchor)
        start = self.span(anchor)[0]
        return _Edit(start, start, self.render(node, indent, sep.startswith(self.nl)) + sep)

    def _separator(self, anchor: etree._Element) -> tuple[str, str]:
        """What goes between two siblings at ANCHOR's level, and their indentation."""
        indent = self.indent(anchor)
        if indent is None:  # siblings share a line: copy the spacing, no indentation
            return self.space_before(self.span(anchor)[0]), ""
        return self.nl + indent, indent

    def fill(self, parent: etree._Element, nodes: list[_New]) -> _Edit:
        """NODES as the only elements of PARENT (``<devices/>``, ``<devices> </devices>``)."""
        start, start_end, end_start, end = self.span(parent)
        indent = self.indent(parent)
        pretty = indent is not None and "\n" in self.text
        indent = indent or ""
        lead = self.nl + indent + self.unit if pretty else ""
        inner = "".join(lead + self.render(node, indent + self.unit, pretty) for node in nodes)
        inner += self.nl + indent if pretty else ""
        if start_end == end:  # <parent .../>: reopen it
            tag = self.text[start:end]
            head = re.sub(r"\s*/>\Z", ">", tag)
            name = re.match(r"<([^\s/>]+)", tag).group(1)  # type: ignore[union-attr]
            return _Edit(start, end, f"{head}{inner}</{name}>")
        # Replace the whitespace before the end tag (keep comments inside).
        return _Edit(end_start - len(self.space_before(end_start)), end_start, inner)

    def apply(self, edits: list[_Edit], *, delta: int) -> str:
        """Splice EDITS into the text, then re-parse it: DELTA elements more (or fewer)."""
        out = self.text
        # From the end, so offsets stay valid; of two insertions at one offset the later one in
        # EDITS goes in first, so that the earlier one ends up before it.
        for _, edit in sorted(enumerate(edits), key=lambda ie: (ie[1].start, ie[0]), reverse=True):
            out = out[: edit.start] + edit.text + out[edit.end :]
        try:
            count = sum(1 for e in _parse(out).iter() if _is_element(e))
        except XmlPatchRefused:
            count = -1
        if count != len(self.elements) + delta:
            raise XmlPatchRefused(
                "internal error: the patched XML failed its self-check; nothing was changed",
                hint="report this as a qgactl bug, with the XML",
            )
        return out
