"""One typed method per guest agent command, over any Transport.

``call`` is the raw escape hatch (command name + arguments -> the ``return`` value); the typed
methods build models from it. Errors from the agent come out as AgentCommandError with the
command, the error class and the guest's own description. A reply that lacks mandatory members
is shown with them empty, and ``warn`` (the Terminal's, from the App) is told once what was
lacking. No printing, no libvirt.
"""

from __future__ import annotations

import base64
import reprlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from qgactl.errors import AgentCommandError, ProtocolError, QgactlError
from qgactl.transport import Transport
from qgactl.wire import Reply, encode_request

# The models are imported by the methods that build them: creating their ~30 classes costs
# ~5 ms of start-up, and `qgactl ping` needs none of them.
if TYPE_CHECKING:
    from qgactl.models import (
        AgentInfo,
        AuthorizedKeys,
        CpuStats,
        Disk,
        DiskStats,
        Filesystem,
        GuestTime,
        HostName,
        LoadAverage,
        Memory,
        NetworkInterface,
        OsInfo,
        Route,
        Timezone,
        TrimResult,
        User,
        Vcpu,
    )
    from qgactl.replies import ExecStatus, FileChunk

# Commands with "success-response": false in qga/qapi-schema.json: no reply when they work.
NO_SUCCESS_RESPONSE = frozenset(
    {"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid"}
)


T = TypeVar("T")


class Agent:
    def __init__(
        self,
        transport: Transport,
        timeout: float,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self._warn = warn
        self._warned: set[str] = set()
        self._last_reply: Reply | None = None
        self._replies = 0

    def call(
        self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run ``command`` and return its ``return`` value (None for a silent success)."""
        reply = self.send(encode_request(command, arguments), command, timeout)
        return None if reply is None else reply.result(command)

    def send(self, request: bytes, command: str, timeout: float | None = None) -> Reply | None:
        """Send an encoded request and return the whole reply (``qgactl raw``); None for a
        command that does not answer on success and did not answer."""
        try:
            self._last_reply = self.transport.send(
                request,
                command,
                self.timeout if timeout is None else timeout,
                command not in NO_SUCCESS_RESPONSE,
            )
        except QgactlError as exc:
            exc.with_context(command=command, target=self.transport.target)
            raise
        self._replies += 1
        return self._last_reply

    @property
    def only_reply(self) -> Reply | None:
        """For -o raw: the reply as the agent sent it, when exactly one call was made (what
        two replies make, e.g. a set and the read back, has no single raw form)."""
        return self._last_reply if self._replies == 1 else None

    def close(self) -> None:
        self.transport.close()

    def build(self, build: Callable[..., T], *args: Any) -> T:
        """``build(*args)`` (a model from replies), warning once per agent command whose
        reply lacked mandatory members ("TARGET: guest-get-disks: reply lacks name")."""
        from qgactl.models import noting_gaps

        model, gaps = noting_gaps(build, *args)
        for line in gaps:
            if self._warn is not None and line not in self._warned:
                self._warned.add(line)
                self._warn(f"{self.transport.target}: {line}")
        return model

    def ping(self) -> None:
        self.call("guest-ping")

    def info(self) -> AgentInfo:
        from qgactl.models import AgentInfo

        return self.build(AgentInfo.from_reply, self.call("guest-info"))

    def require(self, *commands: str) -> None:
        """Fail before doing anything when the agent lacks or blocks one of ``commands``
        (guest-info), so that a job that needs several never stops half way."""
        listed = self.info().commands
        if listed is None:
            return  # the agent doesn't list its commands: the call itself will say
        known = {command.name: command.enabled is not False for command in listed}
        for command in commands:
            if known.get(command, False):
                continue
            desc = f"Command {command} has " + (
                "been disabled" if command in known else "not been found"
            )
            if command in known and self._frozen():
                desc += ": the agent is in frozen state"  # qemu-ga's words when it refuses
            raise AgentCommandError(command, "CommandNotFound", desc)

    def _frozen(self) -> bool:
        """Whether the guest's filesystems are frozen: qemu-ga then disables every command
        that could write, and guest-info lists them as disabled like a blocked one."""
        try:
            return self.fsfreeze_status() == "frozen"
        except QgactlError:
            return False

    def osinfo(self) -> OsInfo:
        from qgactl.models import OsInfo

        return self.build(OsInfo.from_reply, self.call("guest-get-osinfo"))

    def fsfreeze_status(self) -> str:
        """The guest's state, "thawed" or "frozen" (this works even while frozen)."""
        status = self.call("guest-fsfreeze-status")
        if status not in ("thawed", "frozen"):
            raise ProtocolError(f"guest-fsfreeze-status: unexpected status {reprlib.repr(status)}")
        return str(status)

    # -- filesystems: freeze, thaw, trim, info (qga/qapi-schema.json) -------------------------

    def fsfreeze_freeze(
        self, mountpoints: Sequence[str] = (), *, timeout: float | None = None
    ) -> int:
        """Freeze every freezable filesystem, or only ``mountpoints`` (the agent ignores unknown
        ones); returns how many are frozen. On error the agent thaws them all again (schema)."""
        if mountpoints:
            arguments = {"mountpoints": list(mountpoints)}
            count = self.call("guest-fsfreeze-freeze-list", arguments, timeout=timeout)
        else:
            count = self.call("guest-fsfreeze-freeze", timeout=timeout)
        return self._count("guest-fsfreeze-freeze", count)

    def fsfreeze_thaw(self, *, timeout: float | None = None) -> int:
        """Thaw every frozen filesystem (there is no per-mountpoint thaw); returns how many."""
        return self._count("guest-fsfreeze-thaw", self.call("guest-fsfreeze-thaw", timeout=timeout))

    def fstrim(
        self, minimum: int | None = None, *, timeout: float | None = None
    ) -> tuple[TrimResult, ...]:
        from qgactl.models import TrimResult

        arguments = None if minimum is None else {"minimum": minimum}
        return self.build(
            TrimResult.list_from_reply, self.call("guest-fstrim", arguments, timeout=timeout)
        )

    def fsinfo(self) -> tuple[Filesystem, ...]:
        from qgactl.models import Filesystem

        return self.build(Filesystem.list_from_reply, self.call("guest-get-fsinfo"))

    def disks(self) -> tuple[Disk, ...]:
        from qgactl.models import Disk

        return self.build(Disk.list_from_reply, self.call("guest-get-disks"))

    # -- the guest's state (qga/qapi-schema.json) ---------------------------------------------

    def hostname(self) -> HostName:
        from qgactl.models import HostName

        return self.build(HostName.from_reply, self.call("guest-get-host-name"))

    def users(self) -> tuple[User, ...]:
        from qgactl.models import User

        return self.build(User.list_from_reply, self.call("guest-get-users"))

    def timezone(self) -> Timezone:
        from qgactl.models import Timezone

        return self.build(Timezone.from_reply, self.call("guest-get-timezone"))

    def get_time(self) -> GuestTime:
        """The guest's clock, and the host's read halfway through the call (for the drift)."""
        from qgactl.models import GuestTime

        before = time.time_ns()
        reply = self.call("guest-get-time")
        return GuestTime.from_reply(reply, (before + time.time_ns()) // 2)

    def set_time(self, nanoseconds: int | None) -> None:
        """Set the guest's clock (and its RTC, with hwclock -w). Without a time the agent reads
        the guest's own RTC (hwclock -s), which is not the host's time (PROTOCOL.md)."""
        arguments = None if nanoseconds is None else {"time": nanoseconds}
        self.call("guest-set-time", arguments)

    def interfaces(self) -> tuple[NetworkInterface, ...]:
        from qgactl.models import NetworkInterface

        return self.build(
            NetworkInterface.list_from_reply, self.call("guest-network-get-interfaces")
        )

    def routes(self) -> tuple[Route, ...]:
        from qgactl.models import Route

        return self.build(Route.list_from_reply, self.call("guest-network-get-route"))

    def vcpus(self) -> tuple[Vcpu, ...]:
        from qgactl.models import Vcpu

        return self.build(Vcpu.list_from_reply, self.call("guest-get-vcpus"))

    def set_vcpus(self, logical_ids: Sequence[int], online: bool) -> int:
        """Bring vCPUs online or offline; returns how many the guest changed (all of them).

        The agent stops at the first vCPU it can't change and returns how many it did before;
        asked again with the rest, it says why (schema, guest-set-vcpus): so ask until every
        one is done or the agent answers with an error.
        """
        done = 0
        while done < len(logical_ids):
            rest = [{"logical-id": cpu, "online": online} for cpu in logical_ids[done:]]
            try:
                count = self._count(
                    "guest-set-vcpus", self.call("guest-set-vcpus", {"vcpus": rest})
                )
            except AgentCommandError as exc:
                if done:
                    first = f"the guest changed {done} of the {len(logical_ids)} vCPUs first"
                    exc.hint = f"{first}; {exc.hint}" if exc.hint else first
                raise
            if not 0 < count <= len(rest):
                raise ProtocolError(f"guest-set-vcpus: processed {count} of {len(rest)}")
            done += count
        return done

    def memory(self) -> Memory:
        from qgactl.models import Memory

        return self.build(
            Memory.from_replies,
            self.call("guest-get-memory-blocks"),
            self.call("guest-get-memory-block-info"),
        )

    def load(self) -> LoadAverage:
        from qgactl.models import LoadAverage

        return self.build(LoadAverage.from_reply, self.call("guest-get-load"))

    def diskstats(self) -> tuple[DiskStats, ...]:
        from qgactl.models import DiskStats

        return self.build(DiskStats.list_from_reply, self.call("guest-get-diskstats"))

    def cpustats(self) -> tuple[CpuStats, ...]:
        from qgactl.models import CpuStats

        return self.build(CpuStats.list_from_reply, self.call("guest-get-cpustats"))

    # -- power and accounts (qga/qapi-schema.json) ---------------------------------------------

    def shutdown(self, mode: str = "powerdown") -> None:
        """guest-shutdown: "powerdown", "halt" or "reboot". No reply when it works (the guest
        runs `shutdown -h -P|-H|-r +0`); the guest going away is success too."""
        self.call("guest-shutdown", {"mode": mode})

    def suspend(self, mode: str) -> None:
        """guest-suspend-ram, -disk or -hybrid: no reply when it works; the agent answers
        an error when the guest's kernel can't (its /sys/power/state)."""
        self.call(f"guest-suspend-{mode}")

    def set_user_password(self, username: str, password: str, *, crypted: bool = False) -> None:
        """The password goes base64 (schema: "to ensure it is 8-bit safe"); a --debug trace
        shows it redacted (render.Terminal.trace)."""
        encoded = base64.b64encode(password.encode()).decode()
        arguments = {"username": username, "password": encoded, "crypted": crypted}
        self.call("guest-set-user-password", arguments)

    def ssh_keys(self, username: str) -> AuthorizedKeys:
        """The user's ~/.ssh/authorized_keys; a user without that file has no keys (qemu-ga
        7.2 answers "failed to read ...: No such file or directory")."""
        from qgactl.models import AuthorizedKeys

        try:
            reply = self.call("guest-ssh-get-authorized-keys", {"username": username})
        except AgentCommandError as exc:
            if "No such file or directory" in exc.desc and "failed to read" in exc.desc:
                return AuthorizedKeys(username, ())
            raise
        return self.build(AuthorizedKeys.from_reply, username, reply)

    def ssh_add_keys(self, username: str, keys: Sequence[str], *, reset: bool = False) -> None:
        """Append ``keys`` (or, with ``reset``, replace every key with them). qemu-ga creates
        ~/.ssh and the file as the user, mode 600."""
        arguments = {"username": username, "keys": list(keys), "reset": reset}
        self.call("guest-ssh-add-authorized-keys", arguments)

    def ssh_remove_keys(self, username: str, keys: Sequence[str]) -> None:
        """Keys that are not there are not an error (schema)."""
        self.call("guest-ssh-remove-authorized-keys", {"username": username, "keys": list(keys)})

    # -- processes and files: guest-exec*, guest-file-* (qga/qapi-schema.json) ----------------
    # The engines that make them safe at any size are guest_exec.py, guestfile.py, transfer.py.

    def exec_start(
        self,
        path: str,
        args: Sequence[str] = (),
        *,
        env: Sequence[str] | None = None,
        input_data: bytes | None = None,
        capture: bool = False,
    ) -> int:
        """Start a process; returns its guest pid. Without ``env`` it inherits qemu-ga's
        environment; with it, it gets exactly ``env``."""
        arguments: dict[str, Any] = {"path": path, "arg": list(args), "capture-output": capture}
        if env is not None:
            arguments["env"] = list(env)
        if input_data:
            arguments["input-data"] = base64.b64encode(input_data).decode()
        reply = self.call("guest-exec", arguments)
        if not isinstance(reply, dict):
            raise ProtocolError(f"guest-exec: expected an object, got {reprlib.repr(reply)}")
        return self._count("guest-exec", reply.get("pid"))

    def exec_status(self, pid: int, *, timeout: float | None = None) -> ExecStatus:
        """The process's state; once it says exited, qemu-ga has forgotten the process."""
        from qgactl.replies import ExecStatus

        return ExecStatus.from_reply(self.call("guest-exec-status", {"pid": pid}, timeout=timeout))

    def file_open(self, path: str, mode: str = "r") -> int:
        """A handle for ``path``; fopen(3) modes. A file it creates gets mode 0666 (qemu-ga's
        umask is 0), so create private files some other way."""
        handle = self.call("guest-file-open", {"path": path, "mode": mode})
        return self._count("guest-file-open", handle)

    def file_read(self, handle: int, count: int) -> FileChunk:
        from qgactl.replies import FileChunk

        reply = self.call("guest-file-read", {"handle": handle, "count": count})
        return FileChunk.from_reply(reply, count)

    def file_write(self, handle: int, data: bytes) -> int:
        arguments = {"handle": handle, "buf-b64": base64.b64encode(data).decode()}
        reply = self.call("guest-file-write", arguments)
        if not isinstance(reply, dict):
            raise ProtocolError(f"guest-file-write: expected an object, got {reprlib.repr(reply)}")
        written = self._count("guest-file-write", reply.get("count"))
        if written != len(data):
            raise ProtocolError(f"guest-file-write: wrote {written} of {len(data)} bytes")
        return written

    def file_size(self, handle: int) -> int:
        """The file's size: seek to the end and back to the start (guest-file-seek)."""
        end = self.call("guest-file-seek", {"handle": handle, "offset": 0, "whence": "end"})
        self.call("guest-file-seek", {"handle": handle, "offset": 0, "whence": "set"})
        position = end.get("position") if isinstance(end, dict) else None
        return self._count("guest-file-seek", position)

    def file_close(self, handle: int) -> None:
        self.call("guest-file-close", {"handle": handle})

    @staticmethod
    def _count(command: str, value: Any) -> int:
        """A count, pid or handle from the agent (a JSON int >= 0, never a bool)."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"{command}: expected a count, got {reprlib.repr(value)}")
        return value
