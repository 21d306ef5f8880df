# qgactl.guest.domains: the running libvirt domains that have a guest agent channel.
# MIT License (see qgactl's pyproject.toml)
"""The inventory plugin: qgactl.targets(all_domains=True) over the hosts, then each agent is
asked for its OS and IP addresses, all hosts and guests at once."""

from __future__ import annotations

DOCUMENTATION = r"""
name: domains
short_description: The running libvirt domains with a QEMU guest agent channel (qgactl)
description:
  - Lists the running domains that have a guest agent channel on every libvirt host given,
    and asks each agent for the guest's OS and IP addresses (one agent call each, every guest
    at once). Each domain gets C(ansible_connection=qgactl.guest.agent) and the variables it
    needs, so a playbook reaches the guests with no network in them.
  - "Groups: C(qgactl) (every domain), C(host_<NAME>) (the domains of one libvirt host),
    C(os_<ID>) (the guest OS id from guest-get-osinfo: debian, ubuntu, rhel, mswindows...;
    C(os_unknown) when the agent did not say)."
  - "Host variables: C(ansible_host) (the domain), C(ansible_libvirt_uri), C(qgactl_host)
    (the host's NAME), C(qgactl_os) (id, name, pretty_name, version, version_id,
    kernel_release, machine), C(qgactl_ip_addresses) (the guest's addresses, loopback left
    out), C(qgactl_agent_error) (why the agent could not be asked, when it could not)."
  - A domain name seen on two hosts is named C(<domain>_<NAME>) on the second.
  - The source file's name must end in C(.qgactl.yml) or C(.qgactl.yaml).
author: qgactl authors
requirements:
  - qgactl (in the Python that runs Ansible on the controller)
options:
  plugin:
    description: This plugin's name.
    required: true
    choices: [qgactl.guest.domains]
  uris:
    description:
      - The libvirt hosts, each a URI (C(qemu+ssh://kvm3/system)) or a mapping with C(uri)
        and C(name) (the host's group name).
      - A URI's name is its host part (C(kvm3)), or C(localhost) for a local URI.
    type: list
    elements: raw
    default: [qemu:///system]
  timeout:
    description: Seconds for each libvirt host and each agent to answer.
    type: float
    default: 5
  jobs:
    description: Agents asked at once.
    type: integer
    default: 16
"""

EXAMPLES = r"""
# kvm.qgactl.yml
plugin: qgactl.guest.domains
uris:
  - qemu:///system
  - qemu+ssh://kvm3/system
  - {uri: "qemu+ssh://root@10.0.0.4/system", name: kvm4}
"""

import re

from ansible.errors import AnsibleParserError

from ansible.plugins.inventory import BaseInventoryPlugin

try:
    import qgactl
except ImportError as exc:
    QGACTL_IMPORT_ERROR: ImportError | None = exc
else:
    QGACTL_IMPORT_ERROR = None


class InventoryModule(BaseInventoryPlugin):
    NAME = "qgactl.guest.domains"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".qgactl.yml", ".qgactl.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        if QGACTL_IMPORT_ERROR is not None:
            raise AnsibleParserError(
                f"qgactl.guest.domains needs the qgactl package ({QGACTL_IMPORT_ERROR})"
            )
        hosts = [_host(entry) for entry in self.get_option("uris")]
        uris = [uri for uri, _ in hosts]
        names = dict(hosts)
        fleet = qgactl.targets(
            all_domains=True,
            uris=uris,
            timeout=float(self.get_option("timeout")),
            jobs=int(self.get_option("jobs")),
        )
        with fleet:
            for label, error in fleet.failures:
                self.display.warning(f"qgactl.guest.domains: {label}: {error}")
            results = fleet.map(_facts)
        self.inventory.add_group("qgactl")
        for result in results:
            if result.guest.domain is None:  # its host is down: warned about above
                continue
            self._add(result, names[result.guest.uri])

    def _add(self, result, host_name):
        guest = result.guest
        name = guest.domain
        if name in self.inventory.hosts:
            name = f"{guest.domain}_{host_name}"
        host_group = self.inventory.add_group(_group("host", host_name))
        os_info, addresses = result.value if result.ok else ({}, [])
        os_group = self.inventory.add_group(_group("os", os_info.get("id") or "unknown"))
        for group in ("qgactl", host_group, os_group):
            self.inventory.add_host(name, group=group)
        variables = {
            "ansible_connection": "qgactl.guest.agent",
            "ansible_host": guest.domain,
            "ansible_libvirt_uri": guest.uri,
            "qgactl_host": host_name,
            "qgactl_os": os_info,
            "qgactl_ip_addresses": addresses,
        }
        if result.error is not None:
            variables["qgactl_agent_error"] = str(result.error)
        for key, value in variables.items():
            self.inventory.set_variable(name, key, value)


def _facts(guest):
    """What each guest's agent says: its OS, and its addresses (loopback left out)."""
    osinfo = guest.osinfo()._asdict()
    try:
        interfaces = guest.interfaces()
    except qgactl.AgentCommandError:  # blocked or unsupported: the OS is still worth having
        interfaces = ()
    addresses = [
        address.address
        for interface in interfaces
        for address in interface.addresses
        if interface.name != "lo" and not address.address.startswith(("127.", "::1"))
    ]
    return {k: v for k, v in osinfo.items() if v is not None}, addresses


def _host(entry):
    """(uri, name) from a URI or a {uri, name} mapping."""
    if isinstance(entry, dict):
        uri = entry.get("uri")
        if not uri:
            raise AnsibleParserError(f"qgactl.guest.domains: {entry!r} has no uri")
        return uri, entry.get("name") or _host_name(uri)
    return str(entry), _host_name(str(entry))


def _host_name(uri):
    """qemu+ssh://root@kvm3:22/system -> kvm3; qemu:///system -> localhost."""
    rest = uri.partition("://")[2]
    authority = rest.split("/", 1)[0].rpartition("@")[2]
    return authority.rsplit(":", 1)[0] if authority else "localhost"


def _group(kind, name):
    """A group name Ansible accepts: letters, digits and _ only."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', str(name))}"
