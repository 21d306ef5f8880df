"""A virtio-serial port of qgactl's own, hot-plugged into a running domain and reached through
libvirt's channel stream: the transport of ``qgactl shell`` and of the lanes (lane.py).

Why: every domain with an agent channel already has the virtio-serial controller a second port
needs; libvirt puts the port's unix socket in its private channel directory and
virDomainOpenChannel reaches it, the same way over qemu+ssh as locally, with no socket or TCP
port anyone else can reach, and without the agent's base64 and polling.

``PluggedPort.open`` starts a guard process (``python -m qgactl.portlink``, its own session)
before it plugs the port: the guard waits for its stdin pipe to close, however its parent went
(SIGKILL included), and then unplugs the port if it is still there. ``close`` aborts the
stream, unplugs the port and stops the guard; the guest end of the port then polls POLLHUP,
which is how the guest side learns that the host side is gone.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from qgactl import xmlgen

VIR_DOMAIN_AFFECT_LIVE = 1
GUEST_PORT_SOURCE = Path(__file__).with_name("guest_port.py")


def guest_source(script: Path) -> str:
    """A guest script's source for ``python3 -c``, with guest_port.py's ahead of it (the
    script imports open_port from there on the host; in the guest it is already defined)."""
    return GUEST_PORT_SOURCE.read_text() + "\n" + script.read_text()


class PluggedPort:
    """A port ``PREFIX<random>`` plugged into ``domain`` (a libvirt.virDomain on ``uri``) and
    its open stream; ``close`` is idempotent and safe after a failed ``open``."""

    def __init__(self, domain: Any, uri: str, prefix: str) -> None:
        self.domain = domain
        self.uri = uri
        self.name = prefix + secrets.token_hex(6)
        self.stream: Any = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._plugged = False

    def open(self) -> None:
        """Start the guard, plug the port and open its stream (LibvirtFailure and friends)."""
        import libvirt

        from qgactl.transport import libvirt_error

        uuid = self.domain.UUIDString()
        self._guard = subprocess.Popen(
            [sys.executable, "-m", "qgactl.portlink", self.uri, uuid, self.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or hangup of our terminal must not reach it
        )
        try:
            self.domain.attachDeviceFlags(
                xmlgen.virtio_port_element(self.name), VIR_DOMAIN_AFFECT_LIVE
            )
            self._plugged = True
            self.stream = self.domain.connect().newStream(0)
            self.domain.openChannel(self.name, self.stream, 0)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, domain=self.domain.name()) from None

    def close(self) -> None:
        """Abort the stream (the guest end polls POLLHUP), unplug the port, stop the guard."""
        import libvirt

        if self.stream is not None:
            stream, self.stream = self.stream, None
            try:
                stream.abort()
            except libvirt.libvirtError:  # already closed by the other side
                pass
        if self._plugged:
            unplug(self.domain, self.name)
            self._plugged = False
        if self._guard is not None:
            self._guard.terminate()
            self._guard.wait()
            self._guard = None


def unplug(domain: Any, port: str) -> None:
    """Remove the port from the running domain, if it is still there."""
    import libvirt

    try:
        for element in xmlgen.channel_elements(domain.XMLDesc(0), name=port):
            domain.detachDeviceFlags(element, VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError:
        pass  # the domain stopped: the port went with it


def guard(uri: str, uuid: str, port: str) -> None:
    """Wait for the process that started us to go (our stdin, its pipe, closes however it
    went), then unplug its port if it is still there."""
    sys.stdin.buffer.read()
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        unplug(libvirt.open(uri).lookupByUUIDString(uuid), port)
    except libvirt.libvirtError:
        pass


if __name__ == "__main__":
    guard(*sys.argv[1:4])
