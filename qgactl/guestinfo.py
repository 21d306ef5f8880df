"""``guestinfo``: the parts of a guest's state in one view, gathered the cheapest way.

Through libvirt, ``virDomainGetGuestInfo`` gathers os, hostname, users, timezone, filesystems,
disks and interfaces in ONE RPC (9-11 ms a guest against 18-26 ms for separate agent calls,
PROTOCOL.md); its flat typed parameters ("fs.0.disk.0.serial") are unflattened here into the
same models the agent calls build, so the JSON has one shape whichever way it was gathered
(what libvirt doesn't pass on is None: disk bus addresses, interface counters,
total-bytes-privileged).
The parts libvirt lacks (load, vcpus; any flag this libvirt-python doesn't have) and every
part over a socket are agent calls. guest-info says first what the agent has: parts it lacks
or blocks are left out, never errors. No printing, no click.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

from qgactl.agent import Agent
from qgactl.errors import AgentCommandError, ProtocolError
from qgactl.models import (
    Disk,
    DiskAddress,
    Filesystem,
    GuestInfo,
    HostName,
    NetworkInterface,
    OsInfo,
    Timezone,
    User,
)
from qgactl.transport import through_libvirt


class Part(NamedTuple):
    name: str  # the option (--fs) and the JSON key
    command: str  # the agent command behind it
    libvirt_flag: str | None  # libvirt-python's VIR_DOMAIN_GUEST_INFO_* for it, if any
    call: Callable[[Agent], Any]


PARTS = (
    Part("os", "guest-get-osinfo", "VIR_DOMAIN_GUEST_INFO_OS", Agent.osinfo),
    Part("hostname", "guest-get-host-name", "VIR_DOMAIN_GUEST_INFO_HOSTNAME", Agent.hostname),
    Part("users", "guest-get-users", "VIR_DOMAIN_GUEST_INFO_USERS", Agent.users),
    Part("timezone", "guest-get-timezone", "VIR_DOMAIN_GUEST_INFO_TIMEZONE", Agent.timezone),
    Part("fs", "guest-get-fsinfo", "VIR_DOMAIN_GUEST_INFO_FILESYSTEM", Agent.fsinfo),
    Part("disks", "guest-get-disks", "VIR_DOMAIN_GUEST_INFO_DISKS", Agent.disks),  # libvirt 7.0
    Part(
        "net", "guest-network-get-interfaces", "VIR_DOMAIN_GUEST_INFO_INTERFACES", Agent.interfaces
    ),
    Part("load", "guest-get-load", None, Agent.load),
    Part("vcpus", "guest-get-vcpus", None, Agent.vcpus),
)
PART_NAMES = tuple(part.name for part in PARTS)


def gather(agent: Agent, names: Sequence[str] = ()) -> GuestInfo:
    """The parts named (all when none are) that the agent has enabled."""
    wanted = [part for part in PARTS if not names or part.name in names]
    info = agent.info()
    if info.commands is None:  # the agent doesn't list its commands: ask, and see
        return GuestInfo(**_asking(agent, wanted))
    available = [part for part in wanted if part.command in info.enabled]
    found: dict[str, Any] = {}
    libvirt = through_libvirt(agent.transport)
    if libvirt is not None:
        flags = _libvirt_flags(available)
        if flags:
            types = 0
            for flag in flags.values():
                types |= flag
            params = libvirt.guest_info(types)
            found.update(agent.build(unflatten_guest_info, params, list(flags)))
    for part in available:
        if part.name not in found:
            found[part.name] = part.call(agent)
    return GuestInfo(**found)


def _asking(agent: Agent, parts: Sequence[Part]) -> dict[str, Any]:
    """Each part from its agent call; those the agent lacks or blocks are left out."""
    found = {}
    for part in parts:
        try:
            found[part.name] = part.call(agent)
        except AgentCommandError as exc:
            if exc.error_class != "CommandNotFound":
                raise
    return found


def _libvirt_flags(parts: Sequence[Part]) -> dict[str, int]:
    """part name -> the libvirt flag for it, for the parts this libvirt-python can gather."""
    import libvirt

    flags = {}
    for part in parts:
        flag = getattr(libvirt, part.libvirt_flag, None) if part.libvirt_flag else None
        if isinstance(flag, int):
            flags[part.name] = flag
    return flags


# -- virDomainGetGuestInfo's typed parameters -> models ---------------------------------------
# Names from libvirt's virDomainGetGuestInfo documentation (src/libvirt-domain.c, virsh.rst):
# "user.count", "user.<n>.name", "user.<n>.login-time" (milliseconds), "os.<field>",
# "timezone.name", "timezone.offset", "hostname", "fs.<n>.{name,mountpoint,fstype,total-bytes,
# used-bytes}", "fs.<n>.disk.<m>.{alias,serial,device}", "disk.<n>.{name,partition,serial,
# alias,guest_alias}", "disk.<n>.dependency.<m>.name", "if.<n>.{name,hwaddr}",
# "if.<n>.addr.<m>.{type,addr,prefix}". The values come from the guest: checked as strictly as
# the agent's own replies, by building the agent's reply shape and the same from_reply.


def unflatten_guest_info(params: dict[str, Any], parts: Sequence[str]) -> dict[str, Any]:
    """Typed parameters -> {part name: model} for each of ``parts`` (the ones asked for)."""
    tree = unflatten(params)
    builders: dict[str, Callable[[dict[str, Any]], Any]] = {
        "os": lambda t: OsInfo.from_reply(t.get("os", {})),
        "hostname": lambda t: HostName.from_reply({"host-name": t.get("hostname")}),
        "users": _users,
        "timezone": _timezone,
        "fs": _filesystems,
        "disks": _disks,
        "net": _interfaces,
    }
    return {name: builders[name](tree) for name in parts}


def unflatten(params: dict[str, Any]) -> dict[str, Any]:
    """{"fs.0.disk.1.serial": "x", "fs.count": 1} -> {"fs": [{"disk": [{}, {"serial": "x"}]}]}.

    A numeric component indexes a list (in order of the index; gaps are dropped); the
    "count" members are left out: the entries themselves say how many there are.
    """
    root: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise ProtocolError(f"virDomainGetGuestInfo: a parameter name is {type(key).__name__}")
        *path, leaf = key.split(".")
        if leaf == "count":
            continue
        node = root
        for component in path:
            child = node.setdefault(component, {})
            if not isinstance(child, dict):
                raise ProtocolError(f"virDomainGetGuestInfo: {key} clashes with another member")
            node = child
        node[leaf] = value
    tree = _lists(root)
    if not isinstance(tree, dict):  # only indexes at the top: not libvirt's names
        raise ProtocolError("virDomainGetGuestInfo: unexpected parameter names")
    return tree


def _lists(node: Any) -> Any:
    """Dicts whose keys are all indexes become lists, ordered by index."""
    if not isinstance(node, dict):
        return node
    children = {key: _lists(value) for key, value in node.items()}
    if children and all(key.isdigit() for key in children):
        return [children[key] for key in sorted(children, key=int)]
    return children


def _entries(tree: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = tree.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ProtocolError(f"virDomainGetGuestInfo: {key}.<n> is not a list of entries")
    return entries


def _users(tree: dict[str, Any]) -> tuple[User, ...]:
    users = []
    for entry in _entries(tree, "user"):
        milliseconds = entry.get("login-time")
        seconds = milliseconds / 1000 if isinstance(milliseconds, int) else milliseconds
        reply = {"user": entry.get("name"), "domain": entry.get("domain"), "login-time": seconds}
        users.append(User.from_reply(reply))
    return tuple(users)


def _timezone(tree: dict[str, Any]) -> Timezone:
    zone = tree.get("timezone", {})
    if not isinstance(zone, dict):
        raise ProtocolError("virDomainGetGuestInfo: timezone is not a group of members")
    return Timezone.from_reply({"zone": zone.get("name"), "offset": zone.get("offset")})


def _filesystems(tree: dict[str, Any]) -> tuple[Filesystem, ...]:
    filesystems = []
    for entry in _entries(tree, "fs"):
        reply: dict[str, Any] = {
            "name": entry.get("name"),
            "mountpoint": entry.get("mountpoint"),
            "type": entry.get("fstype"),
            "used-bytes": entry.get("used-bytes"),
            "total-bytes": entry.get("total-bytes"),
            "disk": [],
        }
        filesystem = Filesystem.from_reply(reply)
        disks = tuple(
            _address(disk.get("serial"), disk.get("device"), "fs[].disk[]")
            for disk in _entries(entry, "disk")
        )
        filesystems.append(filesystem._replace(disks=disks))
    return tuple(filesystems)


def _address(serial: Any, device: Any, what: str) -> DiskAddress:
    """libvirt's side of GuestDiskAddress: the serial and the device node, no bus."""
    for field, value in (("serial", serial), ("dev", device)):
        if value is not None and not isinstance(value, str):
            raise ProtocolError(f"virDomainGetGuestInfo: {what}.{field} is {type(value).__name__}")
    return DiskAddress(None, None, None, None, None, serial=serial, dev=device)


def _disks(tree: dict[str, Any]) -> tuple[Disk, ...]:
    disks = []
    for entry in _entries(tree, "disk"):
        reply = {
            "name": entry.get("name"),
            "partition": entry.get("partition"),
            "dependencies": [dep.get("name") for dep in _entries(entry, "dependency")],
            "alias": entry.get("guest_alias"),  # "alias" is libvirt's own name of the disk
        }
        disk = Disk.from_reply(reply)
        serial = entry.get("serial")
        address = None if serial is None else _address(serial, None, "disk[]")
        disks.append(disk._replace(address=address))
    return tuple(disks)


def _interfaces(tree: dict[str, Any]) -> tuple[NetworkInterface, ...]:
    interfaces = []
    for entry in _entries(tree, "if"):
        reply = {
            "name": entry.get("name"),
            "hardware-address": entry.get("hwaddr"),
            "ip-addresses": [
                {
                    "ip-address": a.get("addr"),
                    "ip-address-type": a.get("type"),
                    "prefix": a.get("prefix"),
                }
                for a in _entries(entry, "addr")
            ],
        }
        interfaces.append(NetworkInterface.from_reply(reply))
    return tuple(interfaces)
