"""The guest end of a port qgactl plugged (portlink.py), for the scripts it runs in the guest.

shell_relay.py and lane_guest.py travel alone, as ``python3 -c SOURCE``: portlink.guest_source
sends this file's source ahead of theirs, so the guest gets one script; on the host they import
it as a module. Stdlib only, Python 3.6+, as they are.
"""

import os
import select
import sys
import time

PORT_WAIT = 15.0  # the hot-plugged port's device, and the host's end of it


def open_port(name: str) -> int:
    """The port's /dev node (no udev needed), once the kernel has it and the host end is
    connected; the script exits with 1 if that takes longer than PORT_WAIT."""
    deadline = time.monotonic() + PORT_WAIT
    while time.monotonic() < deadline:
        for entry in os.listdir("/sys/class/virtio-ports"):
            try:
                with open(f"/sys/class/virtio-ports/{entry}/name") as f:
                    found = f.read().strip() == name
            except OSError:
                found = False
            if found and os.path.exists("/dev/" + entry):
                fd = os.open("/dev/" + entry, os.O_RDWR | os.O_NOCTTY)
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while time.monotonic() < deadline:  # POLLHUP until the host end is open
                    if not any(ev & select.POLLHUP for _, ev in poller.poll(0)):
                        return fd
                    time.sleep(0.02)
        time.sleep(0.02)
    sys.exit(1)
