"""guestinfo against its floors (bench/run.py section "guestinfo").

``qgactl guestinfo D`` as a whole process (JSON into a pipe) against ``virsh guestinfo D``,
and against a bare libvirt-python process making the same agent calls qgactl makes for the
lab guest: guest-info, one virDomainGetGuestInfo for the seven parts libvirt gathers, and
guest-get-vcpus (qemu-ga 7.2 has no guest-get-load). The goal: within 1.3x of the bare floor.

Section "fleet-guestinfo": ``qgactl guestinfo GLOB`` over 8 guests against a shell loop of
``virsh guestinfo`` and against the same bare process with a thread per guest.
"""

from __future__ import annotations

from bench.run import PYTHON, QGACTL, compare, compare3, lab_domains, timed

LIBVIRT_GUESTINFO = r"""
import json, sys, threading, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
conn = libvirt.open("qemu:///system")
types = 0
for name in ("OS", "HOSTNAME", "USERS", "TIMEZONE", "FILESYSTEM", "DISKS", "INTERFACES"):
    types |= getattr(libvirt, "VIR_DOMAIN_GUEST_INFO_" + name)
def one(name):
    dom = conn.lookupByName(name)
    call = lambda c: json.loads(libvirt_qemu.qemuAgentCommand(dom, '{"execute":"%s"}' % c, 5, 0))
    call("guest-info")
    params = dom.guestInfo(types, 0)
    params["vcpus"] = call("guest-get-vcpus")["return"]
    print(json.dumps(params))
threads = [threading.Thread(target=one, args=(name,)) for name in sys.argv[1:]]
[t.start() for t in threads]; [t.join() for t in threads]
"""


def bench_guestinfo() -> None:
    with lab_domains(1) as [name]:
        qgactl = ("qgactl guestinfo D", lambda: timed([*QGACTL, "-o", "json", "guestinfo", name]))
        compare(
            "qgactl guestinfo D vs a bare libvirt-python process making the same calls",
            (
                "python3 -c <guest-info, virDomainGetGuestInfo, vcpus>",
                lambda: timed([PYTHON, "-c", LIBVIRT_GUESTINFO, name]),
            ),
            qgactl,
        )
        compare(
            "qgactl guestinfo D vs virsh guestinfo D",
            (
                "virsh guestinfo D",
                lambda: timed(["virsh", "-c", "qemu:///system", "guestinfo", name]),
            ),
            qgactl,
        )


def bench_fleet_guestinfo(count: int = 8) -> None:
    with lab_domains(count) as names:
        glob = names[0].rsplit("-", 1)[0] + "-bench*"
        loop = ["sh", "-c", 'for d in "$@"; do virsh -c qemu:///system guestinfo "$d"; done']
        compare3(
            f"qgactl guestinfo GLOB over {count} guests (one process)",
            (f"virsh guestinfo loop x{count}", lambda: timed([*loop, "sh", *names])),
            (
                f"python3 -c <libvirt, {count} threads>",
                lambda: timed([PYTHON, "-c", LIBVIRT_GUESTINFO, *names]),
            ),
            (
                f"qgactl guestinfo '{glob}'",
                lambda: timed([*QGACTL, "-o", "json", "guestinfo", glob]),
            ),
        )
