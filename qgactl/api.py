"""qgactl's Python API: reach a guest's agent and use it, one guest or many.

    import qgactl

    with qgactl.connect("vm1", uri="qemu+ssh://kvm3/system") as guest:
        print(guest.osinfo().pretty_name)
        result = guest.exec(["uname", "-a"])
        print(result.stdout.decode())

``connect`` returns a ``Guest``: typed methods over qgactl's engines (guest_exec for commands,
transfer for files, freeze/watchdog for fsfreeze, power, guestinfo). ``targets`` names many
guests (names, globs, ``all_domains``, several hosts or sockets) and runs a function on each,
concurrently. Every failure is a ``qgactl.QgactlError`` (qgactl/errors.py documents the tree).
What the calls return that is not a model (Completed, Result) is in qgactl/results.py, loaded
only when used: `qgactl ping` goes through this module and should not pay for building them.

No printing, no click, no rich: the CLI (qgactl/commands/) and the Ansible plugins are clients
of this module like any other. docs/api.md has runnable examples.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Callable, TypeVar

from qgactl.connector import Connector
from qgactl.errors import InvalidUsage
from qgactl.wire import DEFAULT_CHANNEL

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from qgactl.agent import Agent
    from qgactl.agentchannel import ChannelChange, ChannelEdit
    from qgactl.diagnose import Check
    from qgactl.guest_exec import ExecResult
    from qgactl.guestfile import Progress, Sink
    from qgactl.jobs import Job
    from qgactl.models import (
        AgentInfo,
        AuthorizedKeys,
        CpuStats,
        Disk,
        DiskStats,
        Filesystem,
        GuestInfo,
        GuestTime,
        HostName,
        LoadAverage,
        Memory,
        NetworkInterface,
        OsInfo,
        PowerResult,
        Route,
        Timezone,
        TrimResult,
        User,
        Vcpu,
    )
    from qgactl.results import Completed, Result
    from qgactl.targeting import Target

T = TypeVar("T")
DEFAULT_TIMEOUT = 5.0


def connect(
    domain: str | None = None,
    *,
    uri: str | None = None,
    socket: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    transport: str = "auto",
) -> Guest:
    """A ``Guest`` for the libvirt domain ``domain`` (name, UUID or ID) on the host ``uri``
    (None: libvirt's default, $LIBVIRT_DEFAULT_URI or qemu:///system), or for the agent socket
    ``socket`` (bare QEMU, a dedicated channel). ``timeout`` bounds each agent call (connect,
    sync and command together); ``transport`` is "auto", "libvirt" or "socket" as in the CLI.

    Nothing is contacted yet: the first call opens the agent (NotFound, AgentUnavailable...).
    """
    _one_target(domain, socket)
    connector = Connector(timeout=timeout, transport=transport)
    return Guest(connector, domain=domain, socket=socket, uri=uri)


def doctor(
    domain: str | None = None,
    *,
    uri: str | None = None,
    socket: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    transport: str = "auto",
) -> list[Check]:
    """Why doesn't the agent answer? ``qgactl doctor``'s checks as data, in order: each a
    ``Check`` with ``check`` (its name), ``status`` ("pass", "fail", "skipped"), ``detail``,
    ``fix`` and ``exit_code``. The first failure skips the checks after it. Never raises for
    what it finds; only for bad arguments."""
    with connect(domain, uri=uri, socket=socket, timeout=timeout, transport=transport) as guest:
        return guest.doctor()


def add_channel(
    domain: str,
    *,
    uri: str | None = None,
    name: str = DEFAULT_CHANNEL,
    path: str | None = None,
    address: tuple[int, int, int] | None = None,
    config: bool = False,
    live: bool = False,
    dry_run: bool = False,
    raise_half_done: bool = True,
) -> ChannelChange:
    """Add the guest agent's channel (and a virtio-serial controller if needed) to a libvirt
    domain, as ``qgactl add-channel``: by default to its persistent configuration and, when it
    runs, hot-plugged into the live domain (``config`` / ``live`` choose one). Another ``name``
    than libvirt's own is a dedicated channel and needs a host socket ``path``; ``address``
    pins its virtio-serial port (controller, bus, port). Already there: nothing changes.

    Returns a ``ChannelChange`` (``config``, ``live``, ``added_controller``,
    ``restart_needed``, ``notes``; with ``dry_run``, the XML ``diff`` and no change). A refusal
    (XmlPatchRefused, InvalidUsage...) comes before anything changed; a live failure after the
    configuration changed raises an error that says exactly that (with ``raise_half_done``
    False it is returned in ``half_done`` instead, beside the notes on what was done)."""
    from qgactl import agentchannel

    if name != DEFAULT_CHANNEL and path is None:
        raise InvalidUsage(
            f"the channel {name} needs a socket path",
            hint="libvirt holds only org.qemu.guest_agent.0 itself",
        )
    op = agentchannel.adding(name, path, address)
    return _edit_channel(op, domain, uri, config, live, dry_run, raise_half_done)


def remove_channel(
    domain: str,
    *,
    uri: str | None = None,
    name: str = DEFAULT_CHANNEL,
    config: bool = False,
    live: bool = False,
    dry_run: bool = False,
    raise_half_done: bool = True,
) -> ChannelChange:
    """Remove the agent's channel ``name`` from a domain (``add_channel``'s opposite; the
    virtio-serial controller stays)."""
    from qgactl import agentchannel

    op = agentchannel.removing(name)
    return _edit_channel(op, domain, uri, config, live, dry_run, raise_half_done)


def _edit_channel(
    op: ChannelEdit,
    domain: str,
    uri: str | None,
    config: bool,
    live: bool,
    dry_run: bool,
    raise_half_done: bool,
) -> ChannelChange:
    from qgactl import agentchannel
    from qgactl.discover import Libvirt

    libvirt = Libvirt(uri)
    try:
        change = agentchannel.edit(
            libvirt, op, domain, config_opt=config, live_opt=live, dry_run=dry_run
        )
    finally:
        libvirt.close()
    if change.half_done is not None and raise_half_done:
        raise change.half_done
    return change


def _one_target(domain: str | None, socket: str | None) -> None:
    if bool(domain) == bool(socket):
        raise InvalidUsage(
            "give either a domain or a socket", hint='qgactl.connect("vm1") or connect(socket=...)'
        )


class Guest:
    """One guest's agent. Keeps one connection open between calls (``close`` or a ``with``
    block ends it); a call after a failure opens a fresh one."""

    def __init__(
        self,
        connector: Connector,
        *,
        domain: str | None = None,
        socket: str | None = None,
        uri: str | None = None,
        owns_connector: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.connector = connector
        self.domain = domain
        self.socket = socket
        self.uri = uri
        self._owns_connector = owns_connector  # a Fleet's guests (the CLI's too) share one
        self._timeout = timeout  # None: the connector's
        self._agent: Agent | None = None
        self._transport: str | None = None

    @property
    def name(self) -> str:
        """The domain, or the socket path."""
        return self.domain or self.socket or "?"

    @property
    def timeout(self) -> float:
        """The deadline of each agent call, in seconds."""
        return self.connector.timeout if self._timeout is None else self._timeout

    @property
    def transport(self) -> str | None:
        """How the last call reached the agent: "libvirt" or "socket" (with transport="auto",
        "socket" when libvirt's channel failed and the dedicated one answered); None before
        a connection was opened."""
        return self._transport

    def __repr__(self) -> str:
        where = f" on {self.uri}" if self.uri else ""
        return f"<qgactl.Guest {self.name}{where}>"

    def __enter__(self) -> Guest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the connection ---------------------------------------------------------------------

    @property
    def agent(self) -> Agent:
        """The low-level ``qgactl.agent.Agent`` (one method per agent command, ``call`` for
        any): opened on first use."""
        if self._agent is None:
            self._agent = self.open_agent()
        return self._agent

    def open_agent(self, timeout: float | None = None) -> Agent:
        """A new connection of its own to this guest's agent (the caller closes it)."""
        seconds = self._timeout if timeout is None else timeout
        return self.connector.open(self.domain, socket=self.socket, uri=self.uri, timeout=seconds)

    def close(self) -> None:
        """Close the agent connection and libvirt's (a later call opens them again)."""
        if self._agent is not None:
            agent, self._agent = self._agent, None
            agent.close()
        if self._owns_connector:
            self.connector.close()

    def _using(self, work: Callable[[Agent], T]) -> T:
        """``work(agent)``; a failed connection is dropped so that the next call reconnects."""
        from qgactl.errors import AgentCommandError, QgactlError

        agent = self.agent
        try:
            return work(agent)
        except AgentCommandError:
            raise  # the agent answered: the connection is fine
        except QgactlError:
            if self._agent is not None:
                self._agent = None
                with contextlib.suppress(QgactlError):
                    agent.close()
            raise
        finally:
            self._transport = agent.transport.kind  # after the call: auto may have fallen back

    def doctor(self) -> list[Check]:
        """Why doesn't the agent answer? ``qgactl.doctor``'s checks for this guest."""
        from qgactl.diagnose import Doctor

        return Doctor(self.connector, domain=self.domain, socket=self.socket, uri=self.uri).run()

    # -- the agent --------------------------------------------------------------------------

    def ping(self) -> float:
        """guest-ping: returns when the agent answers, with the round trip in seconds (the
        connection's opening not included); raises otherwise."""

        def timed(agent: Agent) -> float:
            started = time.perf_counter()
            agent.ping()
            return time.perf_counter() - started

        return self._using(timed)

    def info(self) -> AgentInfo:
        """The agent's version and its commands (enabled or not)."""
        return self._using(lambda agent: agent.info())

    def osinfo(self) -> OsInfo:
        """The guest's OS (guest-get-osinfo): id, name, version, kernel..."""
        return self._using(lambda agent: agent.osinfo())

    def hostname(self) -> str | None:
        """The guest's host name (None when the agent's reply lacks it)."""
        return self.hostname_info().host_name

    def hostname_info(self) -> HostName:
        """guest-get-host-name's reply: ``host_name``, and in ``extra`` what else it held."""
        return self._using(lambda agent: agent.hostname())

    def users(self) -> tuple[User, ...]:
        """Who is logged in, and since when (guest-get-users)."""
        return self._using(lambda agent: agent.users())

    def timezone(self) -> Timezone:
        """The guest's time zone and its offset from UTC."""
        return self._using(lambda agent: agent.timezone())

    def time(self) -> GuestTime:
        """The guest's clock, and the host's read halfway through the call (for the drift)."""
        return self._using(lambda agent: agent.get_time())

    def set_time(self, nanoseconds: int) -> None:
        """Set the guest's clock to ``nanoseconds`` since the epoch (and its hardware clock,
        with hwclock -w); ``time.time_ns()`` is the host's time now."""
        self._using(lambda agent: agent.set_time(nanoseconds))

    def interfaces(self) -> tuple[NetworkInterface, ...]:
        """The guest's network interfaces and their IP addresses."""
        return self._using(lambda agent: agent.interfaces())

    def routes(self) -> tuple[Route, ...]:
        """The guest's routing table (guest-network-get-route, qemu-ga 9.1+)."""
        return self._using(lambda agent: agent.routes())

    def vcpus(self) -> tuple[Vcpu, ...]:
        """The guest's vCPUs, online or not."""
        return self._using(lambda agent: agent.vcpus())

    def set_vcpus(self, logical_ids: Sequence[int], *, online: bool) -> int:
        """Bring vCPUs online (or offline); returns how many the guest changed: all of them,
        or AgentCommandError says why not (its hint, how many changed before)."""
        return self._using(lambda agent: agent.set_vcpus(logical_ids, online))

    def memory(self) -> Memory:
        """The guest's memory blocks (the units of memory hotplug) and their size."""
        return self._using(lambda agent: agent.memory())

    def load(self) -> LoadAverage:
        """The load average over 1, 5 and 15 minutes (qemu-ga 10.0+)."""
        return self._using(lambda agent: agent.load())

    def diskstats(self) -> tuple[DiskStats, ...]:
        """I/O counters of the guest's block devices (qemu-ga 7.1+)."""
        return self._using(lambda agent: agent.diskstats())

    def cpustats(self) -> tuple[CpuStats, ...]:
        """Time each guest CPU spent per state, in milliseconds (qemu-ga 7.1+)."""
        return self._using(lambda agent: agent.cpustats())

    def fsinfo(self) -> tuple[Filesystem, ...]:
        """The guest's mounted filesystems and the disks under them."""
        return self._using(lambda agent: agent.fsinfo())

    def disks(self) -> tuple[Disk, ...]:
        """The guest's block devices (guest-get-disks, qemu-ga 5.2+)."""
        return self._using(lambda agent: agent.disks())

    def guestinfo(self, *parts: str) -> GuestInfo:
        """Several facts at once ("os", "hostname", "users", "timezone", "fs", "disks", "net",
        "load", "vcpus"; all when none are named): through libvirt's one-call guestinfo when
        it can, and only the parts the agent has enabled."""
        from qgactl.guestinfo import gather

        return self._using(lambda agent: gather(agent, parts))

    def require(self, *commands: str) -> None:
        """Raise AgentCommandError, as the agent would, unless it has every one of
        ``commands`` enabled (guest-info): a job that needs several checks first, and never
        stops half way. An agent that doesn't list its commands passes."""
        self._using(lambda agent: agent.require(*commands))

    def call(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Any agent command, e.g. ``call("guest-get-time")``: its "return" value."""
        return self._using(lambda agent: agent.call(command, dict(arguments or {})))

    # -- processes ----------------------------------------------------------------------------

    def exec(
        self,
        argv: Sequence[str] | str,
        *,
        stdin: bytes | IO[bytes] | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        shell: bool = False,
        cwd: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
        cancelled: Callable[[], int | None] | None = None,
        check: bool = False,
        raise_cannot_run: bool = False,
    ) -> Completed:
        """Run a command in the guest and wait for it; output byte for byte, at any size.

        ``argv`` is a list (no shell), or a string run by the guest's /bin/sh (``shell`` runs
        a list joined by spaces). ``stdin`` is bytes or a binary stream (spooled through a guest
        file, any size). ``env`` adds variables (a mapping, or "NAME=VALUE" strings). ``cwd``
        and ``user`` (a name or a uid: the guest's runuser, else su) say where and as whom it
        runs, on POSIX guests. ``timeout`` kills the command (its whole process group) after
        that many seconds: status 124. Output goes to ``on_stdout`` / ``on_stderr`` (called
        with each chunk as the command writes it), or to writable binary sinks ``stdout`` /
        ``stderr``; else it is returned in ``Completed``. ``cancelled`` is polled while the
        command runs: a signal number from it stops the command (status 128+N). ``check``
        raises CommandFailed on a non-zero status. A command that can't start (not found,
        not executable) ends with status 127 or 126, as in a shell, the guest's reason on its
        stderr and ``pid`` 0; with ``raise_cannot_run`` it raises guest_exec.CannotRun (a
        QgactlError whose exit_code is that status) instead.
        """
        from qgactl import guest_exec
        from qgactl.results import CommandFailed, Completed

        if isinstance(argv, str):
            argv, shell = [argv], True
        out_sink, out_buffer = _sink(stdout, on_stdout)
        err_sink, err_buffer = _sink(stderr, on_stderr)
        stream = io.BytesIO(stdin) if isinstance(stdin, (bytes, bytearray)) else stdin
        pairs = _env_pairs(env)
        try:
            result: ExecResult = self._using(
                lambda agent: guest_exec.run(
                    agent,
                    argv,
                    stdout=out_sink,
                    stderr=err_sink,
                    stdin=stream,
                    env=pairs,
                    shell=shell,
                    cwd=cwd,
                    user=user,
                    timeout_run=timeout,
                    cancelled=cancelled or (lambda: None),
                )
            )
        except guest_exec.CannotRun as exc:
            if raise_cannot_run:
                raise
            err_sink.write(f"{exc}\n".encode())
            result = guest_exec.ExecResult(0, int(exc.exit_code), None)
        completed = Completed(
            result.status,
            result.exit_code,
            result.signal,
            out_buffer.getvalue() if out_buffer else b"",
            err_buffer.getvalue() if err_buffer else b"",
            result.timed_out,
            result.pid,
            result.stdout_truncated,
            result.stderr_truncated,
        )
        if check and completed.status:
            raise CommandFailed(argv, completed)
        return completed

    # -- jobs: commands that outlive the caller ----------------------------------------------

    def start_job(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | Sequence[str] | None = None,
        shell: bool = False,
    ) -> str:
        """Start a command that runs on when this process ends (``qgactl exec --detach``);
        returns its id once it runs. Its output and exit status stay in the guest
        (/run/qgactl/jobs/ID) until ``remove_jobs``. ``env`` and ``shell`` as in ``exec``.
        POSIX guests only."""
        from qgactl import jobs

        pairs = _env_pairs(env)
        return self._using(lambda agent: jobs.start(agent, argv, env=pairs, shell=shell))

    def jobs(self, job_id: str | None = None) -> list[Job]:
        """qgactl's jobs in the guest (or only ``job_id``), oldest first: each a ``Job``
        (``id``, ``command``, ``started``, ``state`` running/exited/lost, ``status``)."""
        from qgactl import jobs

        checked = None if job_id is None else jobs.check_id(job_id)
        return self._using(lambda agent: jobs.list_jobs(agent, checked))

    def job_output(
        self, job_id: str, stdout: Sink, stderr: Sink, offsets: tuple[int, int] = (0, 0)
    ) -> tuple[int, int]:
        """Copy a job's output from ``offsets`` on into the sinks; returns the new offsets
        (for the next call)."""
        from qgactl import jobs

        jobs.check_id(job_id)
        return self._using(lambda agent: jobs.read_output(agent, job_id, stdout, stderr, offsets))

    def wait_job(
        self,
        job_id: str,
        *,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
        timeout: float | None = None,
        cancelled: Callable[[], int | None] | None = None,
    ) -> Job:
        """Wait for a job to end, copying its output into the sinks (when given) as it comes;
        returns the finished Job. AgentTimeout after ``timeout`` seconds (the job runs on);
        a signal number from ``cancelled`` stops the waiting, not the job."""
        from qgactl import jobs

        jobs.check_id(job_id)
        return self._using(
            lambda agent: jobs.follow(
                agent,
                job_id,
                stdout,
                stderr,
                timeout=timeout,
                cancelled=cancelled or (lambda: None),
            )
        )

    def kill_job(self, job_id: str) -> bool:
        """TERM to the job's process group, then KILL; False if it had already ended."""
        from qgactl import jobs

        jobs.check_id(job_id)
        return self._using(lambda agent: jobs.kill(agent, job_id))

    def remove_jobs(self, job_id: str | None = None) -> list[str]:
        """Remove a finished job (``job_id``), or every finished job (None); returns the ids
        removed. A running job is refused (InvalidUsage)."""
        from qgactl import jobs

        checked = None if job_id is None else jobs.check_id(job_id)
        return self._using(lambda agent: jobs.remove(agent, checked))

    # -- files ----------------------------------------------------------------------------------

    def read_file(
        self, path: str, *, into: Sink | None = None, progress: Progress | None = None
    ) -> bytes:
        """The whole guest file (mind its size: ``copy_out`` streams to disk). With ``into``
        (a writable binary stream: a pipe, sys.stdout.buffer) the bytes go there as they come,
        at any size, and b"" is returned. ``progress`` (a guestfile.Progress) is told each chunk."""
        from qgactl import transfer

        buffer = io.BytesIO() if into is None else None
        sink = buffer if buffer is not None else into
        assert sink is not None
        self._using(lambda agent: transfer.download_to(agent, path, sink, progress))
        return buffer.getvalue() if buffer is not None else b""

    def write_file(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        mode: int = 0o644,
        keep_mode: bool = False,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Write ``data`` (bytes, or a binary stream read to its end) to the guest file
        ``path``, atomically (a temporary file renamed into place: readers see the old file or
        the whole new one). A new file gets ``mode``; a file it replaces keeps its mode and
        owner unless ``keep_mode``. ``path`` may be a directory: the file is then ``name`` in
        it (default: the last part of ``path``). Returns the guest path written."""
        from qgactl import transfer

        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        name = name or posixpath.basename(path.rstrip("/"))
        return self._using(
            lambda agent: transfer.upload(
                agent, source, path, name=name, mode=mode, keep_mode=keep_mode, progress=progress
            )
        )

    def copy_in(
        self,
        host_path: str | os.PathLike[str],
        guest_path: str,
        *,
        recursive: bool | None = None,
        keep_mode: bool = False,
        progress: Progress | None = None,
    ) -> str:
        """Copy a host file, or with ``recursive`` a directory, into the guest: all or nothing
        (None: whichever ``host_path`` is). ``guest_path`` may be a directory to copy into.
        A new file gets the host file's mode less the umask (all of it with ``keep_mode``,
        which also applies it to a file replaced). Returns the guest path written; a host
        side that can't be read raises transfer.HostFileError (exit code 1)."""
        from pathlib import Path

        from qgactl import transfer

        given = os.fspath(host_path)
        if recursive is None:
            recursive = Path(given).is_dir()
        if recursive:
            if not Path(given).is_dir():
                raise transfer.HostFileError(f"{given}: not a directory")
            return self._using(
                lambda agent: transfer.upload_tree(agent, given, guest_path, keep_mode=keep_mode)
            )
        try:
            stream = open(given, "rb")  # noqa: SIM115 (closed below, after the upload)
        except OSError as exc:
            raise transfer.HostFileError(f"{given}: {exc.strerror}") from None
        with stream:
            info = os.fstat(stream.fileno())
            if not Path(given).is_file():
                raise transfer.HostFileError(
                    f"{given}: not a regular file", hint="-r copies a directory"
                )
            return self._using(
                lambda agent: transfer.upload(
                    agent,
                    stream,
                    guest_path,
                    name=os.path.basename(given),
                    mode=transfer.new_file_mode(info.st_mode, keep_mode),
                    keep_mode=keep_mode,
                    progress=progress,
                    size=info.st_size,
                )
            )

    def copy_out(
        self,
        guest_path: str,
        host_path: str | os.PathLike[str],
        *,
        recursive: bool = False,
        keep_mode: bool = False,
        progress: Progress | None = None,
    ) -> Path:
        """Copy a guest file (a directory with ``recursive``) to the host: written beside the
        destination and renamed into place only when complete. Returns the host path."""
        from qgactl import transfer

        if recursive:
            return self._using(
                lambda agent: transfer.download_tree(
                    agent, guest_path, host_path, keep_mode=keep_mode
                )
            )
        return self._using(
            lambda agent: transfer.download(
                agent, guest_path, host_path, keep_mode=keep_mode, progress=progress
            )
        )

    # -- filesystems ----------------------------------------------------------------------------

    def fsfreeze_status(self) -> str:
        """ "thawed" or "frozen"."""
        return self._using(lambda agent: agent.fsfreeze_status())

    def thaw(self) -> int:
        """Thaw every filesystem (retrying for up to 30 s); returns how many were thawed."""
        from qgactl import freeze, watchdog

        return watchdog.thaw_until_done(
            lambda: self.open_agent(max(self.timeout, freeze.FREEZE_TIMEOUT)),
            give_up=freeze.THAW_RETRY_SECONDS,
        )

    @contextlib.contextmanager
    def frozen(self, mountpoints: Sequence[str] = (), *, guard: bool = True) -> Iterator[int]:
        """Freeze the guest's filesystems (or only ``mountpoints``) for the ``with`` block,
        and thaw them whatever happens in it; yields how many were frozen.

        With ``guard`` (the default) a watchdog process is armed before the freeze and thaws
        the guest within a second if this Python process dies (SIGKILL included) while frozen.
        A guest that is already frozen raises freeze.AlreadyFrozen and is left alone.
        """
        from qgactl import freeze, watchdog

        seconds = max(self.timeout, freeze.FREEZE_TIMEOUT)
        agent = self.open_agent(seconds)
        try:
            if agent.fsfreeze_status() == "frozen":
                raise freeze.AlreadyFrozen(
                    f"{self.name}: the filesystems are already frozen",
                    hint="thaw them first (Guest.thaw)",
                    domain=self.name,
                )
            keeper = None
            if guard:
                target = watchdog.Target(
                    self.domain, self.socket, self.uri, self.connector.transport, seconds
                )
                keeper = watchdog.start(target, seconds=None, guard=True)
            try:
                count = agent.fsfreeze_freeze(mountpoints, timeout=seconds)
                agent.close()  # one client at a time on a socket: the thaw opens its own
                yield count
            finally:
                try:
                    self.thaw()
                finally:
                    if keeper is not None:
                        keeper.terminate()
                        keeper.wait()
        finally:
            agent.close()

    def fstrim(
        self, minimum: int | None = None, *, timeout: float | None = None
    ) -> tuple[TrimResult, ...]:
        """Discard unused blocks (guest-fstrim): one result per filesystem. Trimming a big
        disk takes minutes: ``timeout`` (seconds) is at least 60 s unless given."""
        seconds = max(self.timeout, 60.0) if timeout is None else timeout
        return self._using(lambda agent: agent.fstrim(minimum, timeout=seconds))

    # -- power and accounts -----------------------------------------------------------------------

    def shutdown(
        self,
        mode: str = "powerdown",
        *,
        wait: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> PowerResult:
        """Ask the guest to power down ("powerdown"), "halt" or "reboot"; with ``wait``
        (seconds), wait until the domain is off (or, for a reboot, its agent answers again),
        telling ``progress`` what it waits for. AgentTimeout when ``wait`` runs out."""
        from qgactl import power

        return self._using(
            lambda agent: power.shutdown(
                agent,
                mode,
                name=self.name,
                domain=self._libvirt_domain(),
                socket_path=self.socket,
                wait=wait,
                progress=progress or (lambda _text: None),
            )
        )

    def suspend(self, mode: str) -> PowerResult:
        """Suspend the guest: "ram" (S3), "disk" (hibernate) or "hybrid". Refused before
        anything happens when the domain could not wake up from it; the result's ``wake``
        says how to wake it."""
        from qgactl import power

        return self._using(
            lambda agent: power.suspend(agent, mode, name=self.name, domain=self._libvirt_domain())
        )

    def _libvirt_domain(self) -> Any:
        """The libvirt.virDomain, to watch it (None for a socket)."""
        return self.connector.host(self.uri).lookup(self.domain) if self.domain else None

    def reboot(self, *, wait: float | None = None) -> PowerResult:
        return self.shutdown("reboot", wait=wait)

    def set_password(self, user: str, password: str, *, crypted: bool = False) -> None:
        """Set a guest user's password (``crypted``: already a crypt(3) hash). It is never
        logged, and never on a command line."""
        self._using(lambda agent: agent.set_user_password(user, password, crypted=crypted))

    def ssh_keys(self, user: str) -> AuthorizedKeys:
        return self._using(lambda agent: agent.ssh_keys(user))

    def add_ssh_keys(self, user: str, keys: Sequence[str], *, reset: bool = False) -> None:
        """Append keys to the user's authorized_keys (``reset``: replace them all)."""
        self._using(lambda agent: agent.ssh_add_keys(user, keys, reset=reset))

    def remove_ssh_keys(self, user: str, keys: Sequence[str]) -> None:
        self._using(lambda agent: agent.ssh_remove_keys(user, keys))

    # -- the fast lane ----------------------------------------------------------------------------

    def lane(self, *, persist: float = 60.0) -> Lane:
        """A lane into this libvirt domain: commands, files and Python programs over a
        virtio-serial port of qgactl's own, served by a warm python3 in the guest (no base64,
        no interpreter start per Python program). Its master process is shared by every
        caller on this host and stays ``persist`` seconds after the last request; then it
        unplugs its port and nothing of it is left in the guest.

        Starts it now if needed: LaneRefused when the guest can't run one (no python3; the
        agent still works). Not for ``socket`` guests."""
        from qgactl.discover import Libvirt
        from qgactl.lane import Lane as Engine

        if not self.domain:
            raise InvalidUsage("a lane needs a libvirt domain", hint="use the agent for sockets")
        engine = Engine(self.domain, Libvirt(self.uri).uri, persist=persist, timeout=self.timeout)
        engine.start()
        return Lane(engine)


class Lane:
    """Requests through a guest's lane (``Guest.lane``); each may run beside the others."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine  # qgactl.lane.Lane

    def exec(
        self,
        argv: Sequence[str] | str,
        *,
        stdin: bytes | IO[bytes] | None = None,
        env: Mapping[str, str] | None = None,
        python: bool = False,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
    ) -> Completed:
        """Run a command (a list, or a string for the guest's /bin/sh) with ``stdin`` and
        ``env`` added to the guest's environment, as root, HOME /root. With ``python``, argv is
        ``[PYTHON]`` and stdin a Python program: when PYTHON is the lane's own python3 a fork
        of its warm interpreter runs it, else PYTHON does. Output goes to the callbacks, else
        into ``Completed``. LaneLost if the lane goes away meanwhile."""
        command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        out_sink, out_buffer = _sink(None, on_stdout)
        err_sink, err_buffer = _sink(None, on_stderr)
        status = self._engine.exec(
            command, stdin=stdin, env=dict(env or {}), python=python,
            on_stdout=out_sink.write, on_stderr=err_sink.write,
        )  # fmt: skip
        return Completed(
            status,
            status if status < 128 else None,
            status - 128 if status >= 128 else None,
            out_buffer.getvalue() if out_buffer else b"",
            err_buffer.getvalue() if err_buffer else b"",
            False,
            0,
        )

    def write_file(self, path: str, data: bytes | IO[bytes], *, mode: int = 0o644) -> None:
        """Write ``data`` to the guest file ``path`` atomically (written beside it, fsynced,
        renamed into place) with ``mode``."""
        self._engine.put(path, data, mode=mode)

    def read_file(self, path: str) -> bytes:
        buffer = io.BytesIO()
        self._engine.get(path, buffer.write)
        return buffer.getvalue()

    def copy_out(self, guest_path: str, host_path: str | os.PathLike[str]) -> Path:
        """Copy a guest file to the host: written beside the destination and renamed into
        place only when complete. Returns the host path."""
        from qgactl import transfer

        target = Path(host_path)
        if target.is_dir():
            target = target / posixpath.basename(guest_path.rstrip("/"))
        with transfer.host_replacement(target, None) as sink:
            self._engine.get(guest_path, sink.write)
        return target

    def stop(self) -> None:
        """End the lane now (for every caller): its port unplugged, its guest side gone."""
        self._engine.stop()


def _env_pairs(env: Mapping[str, str] | Sequence[str] | None) -> Sequence[str]:
    """NAME=VALUE strings, from a mapping or as given."""
    if isinstance(env, Mapping):
        return [f"{name}={value}" for name, value in env.items()]
    return env or ()


def _sink(
    given: Sink | None, callback: Callable[[bytes], object] | None
) -> tuple[Sink, io.BytesIO | None]:
    """Where one output stream goes: a callback, a sink, or a buffer returned to the caller."""
    if callback is not None:
        return _CallbackSink(callback), None
    if given is not None:
        return given, None
    buffer = io.BytesIO()
    return buffer, buffer


class _CallbackSink:
    def __init__(self, callback: Callable[[bytes], object]) -> None:
        self.callback = callback

    def write(self, data: bytes, /) -> int:
        if data:
            self.callback(bytes(data))
        return len(data)


# -- many guests ------------------------------------------------------------------------------


class Fleet:
    """Guests named by ``targets``; ``map`` runs a function on each, concurrently."""

    def __init__(self, connector: Connector, items: Sequence[Target], jobs: int) -> None:
        self.connector = connector
        self.items = list(items)
        self.jobs = jobs

    @property
    def guests(self) -> list[Guest]:
        """A Guest per target that could be named (see ``failures`` for the others)."""
        return [self._guest(item) for item in self.items if item.failure is None]

    @property
    def failures(self) -> list[tuple[str, Exception]]:
        """Targets that could not even be named: (label, error): a host down, a glob that
        matched nothing."""
        return [(item.label, item.failure) for item in self.items if item.failure is not None]

    def map(self, work: Callable[[Guest], Any]) -> list[Result]:
        """``work(guest)`` for every guest, ``jobs`` at once; one Result per target in order.
        A QgactlError in one guest is its Result's ``error``; it never stops the others."""
        from qgactl import fanout
        from qgactl.results import Result

        guests = {item: self._guest(item) for item in self.items}

        def job(item: Target) -> Any:
            with guests[item] as guest:
                return work(guest)

        outcomes = fanout.run_all(self.items, job, self.jobs)
        return [Result(guests[o.target], o.value, o.error) for o in outcomes]

    def close(self) -> None:
        """Close the libvirt connections (one per host, shared by the guests)."""
        self.connector.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _guest(self, item: Target) -> Guest:
        return Guest(
            self.connector,
            domain=item.domain,
            socket=item.socket,
            uri=item.host,
            owns_connector=False,
        )


class _Scope:
    """What targeting.resolve needs to know (the CLI's App is the other one)."""

    def __init__(self, connector: Connector, uris: list[str], sockets: list[str]) -> None:
        self.connector = connector
        self.connect_uris = uris
        self.socket_paths = sockets
        self.timeout = connector.timeout

    def host(self, uri: str | None) -> Any:
        return self.connector.host(uri)


def targets(
    *domains: str,
    uris: Sequence[str] = (),
    sockets: Sequence[str] = (),
    all_domains: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    transport: str = "auto",
    jobs: int = 16,
) -> Fleet:
    """Many guests: ``domains`` (names, UUIDs, IDs, shell globs like "web*") or
    ``all_domains`` (the running domains with an agent channel) on every host in ``uris``
    (default: libvirt's default host), or the agent ``sockets`` (globs too).

    Every host is asked in parallel, each within ``timeout``: a host that is down fails its own
    targets (``Fleet.failures``, and their Results in ``map``) and holds up no other.
    """
    import glob

    from qgactl import targeting

    paths = [p for given in sockets for p in (sorted(glob.glob(given)) or [given])]
    connector = Connector(timeout=timeout, transport=transport)
    scope = _Scope(connector, list(uris), paths)
    found = targeting.resolve(scope, domains, all_domains=all_domains)
    return Fleet(connector, found.items, jobs)
