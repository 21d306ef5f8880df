"""A guest as the exec and file tests see it: how qgactl reaches it, and a raw way around qgactl.

``Target.qgactl_args`` are the global options and the domain (if any) that go around a
subcommand; ``Target.sh(script)`` runs a shell script in the guest through a raw agent call
(libvirt-python's qemuAgentCommand, or lab.agent_call on the guest's OTHER agent socket),
never through qgactl, so that what qgactl did is checked independently.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from lab import lab


@dataclass
class Target:
    name: str
    options: list[str]  # global options (--socket PATH, or --transport libvirt)
    domain: list[str]  # [DOMAIN], or [] with --socket
    raw: Callable[[str, dict[str, Any] | None], Any]  # an agent call that is not qgactl's
    virsh_ping: list[str] | None = None  # for a libvirt domain: virsh's own ping

    def args(self, command: str, *rest: str, options: tuple[str, ...] = ()) -> list[str]:
        domain = [] if command == "cp" else self.domain  # cp names it in SRC or DST
        return [*self.options, *options, command, *domain, *rest]

    def guest_path(self, path: str) -> str:
        """DOMAIN:PATH, or :PATH with --socket, for cp."""
        return f"{self.domain[0] if self.domain else ''}:{path}"

    def popen(
        self, command: str, *rest: str, options: tuple[str, ...] = (), **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "qgactl", *self.args(command, *rest, options=options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kwargs,
        )

    def run(
        self,
        command: str,
        *rest: str,
        stdin: bytes = b"",
        options: tuple[str, ...] = (),
        timeout: float = 120,
    ) -> tuple[int, bytes, bytes]:
        """qgactl as a process with bytes in and out: (status, stdout, stderr)."""
        process = self.popen(command, *rest, options=options, stdin=subprocess.PIPE)
        out, err = process.communicate(stdin, timeout=timeout)
        return process.returncode, out, err

    def sh(self, script: str, timeout: float = 30) -> tuple[int, bytes]:
        """Run ``script`` in the guest without qgactl: (exit code, stdout)."""
        arguments = {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}
        pid = self.raw("guest-exec", arguments)["pid"]
        give_up = time.monotonic() + timeout
        while True:
            status = self.raw("guest-exec-status", {"pid": pid})
            if status["exited"]:
                out = base64.b64decode(status.get("out-data", ""))
                return status.get("exitcode", 128 + status.get("signal", 0)), out
            assert time.monotonic() < give_up, f"{script!r} did not finish in {timeout}s"
            time.sleep(0.02)

    def processes(self) -> str:
        """The guest's process list (ps), to check that nothing was left running."""
        return self.sh("ps -o pid,args")[1].decode()

    def agent_fds(self) -> str:
        """Where every qemu-ga in the guest has its files open (a leaked handle shows here)."""
        script = "for p in $(pidof qemu-ga); do ls -l /proc/$p/fd; done"
        return self.sh(script)[1].decode()


def libvirt_raw(dom: Any) -> Callable[[str, dict[str, Any] | None], Any]:
    import libvirt_qemu

    def call(execute: str, arguments: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), 30, 0))["return"]

    return call


def socket_raw(path: Any) -> Callable[[str, dict[str, Any] | None], Any]:
    def call(execute: str, arguments: dict[str, Any] | None = None) -> Any:
        reply = lab.agent_call(path, execute, arguments, timeout=30)
        assert "return" in reply, reply
        return reply["return"]

    return call


def make_target(name: str, request: pytest.FixtureRequest) -> Target:
    """ "libvirt": the lab domain through libvirt; "socket": the plain QEMU guest's socket."""
    if name == "socket":
        guest = request.getfixturevalue("plain_qemu_guest")
        return Target(
            name, ["--socket", str(guest.socket_path)], [], socket_raw(guest.dedicated_socket)
        )
    domain = request.getfixturevalue("lab_domain")
    assert domain.startswith("qgactl-test-")  # a lab guest, never the host
    dom = request.getfixturevalue("conn").lookupByName(domain)
    ping = ["virsh", "-c", domain.uri, "qemu-agent-command", domain, '{"execute":"guest-ping"}']
    return Target(
        name, ["-c", domain.uri, "--transport", "libvirt"], [domain], libvirt_raw(dom), ping
    )
