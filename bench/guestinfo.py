"""guestinfo against its floors (bench/run.py section "guestinfo").

``qgactl guestinfo D`` as a whole process (JSON into a pipe) against ``virsh guestinfo D``,
and against a bare libvirt-python process making the same agent calls qgactl makes for the
lab guest: guest-info, one virDomainGetGuestInfo for the seven parts libvirt gathers, and
guest-get-vcpus (qemu-ga 7.2 has no guest-get-load). The goal: within 1.3x of the bare floor.
"""

from __future__ import annotations

from bench.run import PYTHON, QGACTL, compare, lab_domains, timed

LIBVIRT_GUESTINFO = r"""
import json, sys, libvirt, libvirt_qemu
libvirt.registerErrorHandler(lambda c, e: None, None)
dom = libvirt.open("qemu:///system").lookupByName(sys.argv[1])
call = lambda c: json.loads(libvirt_qemu.qemuAgentCommand(dom, '{"execute":"%s"}' % c, 5, 0))
call("guest-info")
types = 0
for name in ("OS", "HOSTNAME", "USERS", "TIMEZONE", "FILESYSTEM", "DISKS", "INTERFACES"):
    types |= getattr(libvirt, "VIR_DOMAIN_GUEST_INFO_" + name)
params = dom.guestInfo(types, 0)
params["vcpus"] = call("guest-get-vcpus")["return"]
print(json.dumps(params))
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
