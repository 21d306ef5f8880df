#!/usr/bin/env python3
"""qgactl lab: a real test guest under plain QEMU and under libvirtd (stdlib only).

The guest is built by ``lab/build-guest.sh`` (Debian kernel + a busybox/qemu-ga initramfs, see
that script's header).  It boots under TCG to its first agent reply in a few seconds.  libvirt is
driven through ``virsh`` (no libvirt-python needed, so this works from any python3).

What the guest reports (both flavours): 2 vCPUs; eth0 (MAC 52:54:00:12:34:56) with 10.0.2.15/24
and its fe80:: link-local address; user qgauser (uid 1000, ~/.ssh, a shadow entry, a working
chpasswd) logged in on ttyS0; time zone IST (+05:30); agent shutdown (powerdown, halt) and
reboot that really act.  Nothing leaves the machine: plain QEMU has restricted slirp
(``-netdev user,restrict=on``), libvirt a UDP socket to 127.0.0.1 (see domain_xml).

Flavours (``flavour=`` of PlainQemuGuest, start_domain, define_and_start, prepare_domain_files)
    "host"   (default) the host's qemu-ga: 7.2 on Debian 12          initrd.img
    "qga10"  Debian 13's qemu-ga 10.0 with trixie's own libraries    initrd-qga10.img
             (guest-get-load, guest-network-get-route, capture-output modes, ...)
    "debian12"  (libvirt only: start_domain) a real Debian 12 system: systemd as PID 1, Debian's
             qemu-guest-agent 7.2 package and unit, bash, util-linux (script), python3, vim-tiny,
             less, procps; user qgauser (no password) logged in on ttyS0, which is a pty
             (`virsh console` works; console.log still gets everything). Built once by
             lab/build-debian.sh into a cache outside the worktree (DEBIAN_CACHE, keyed by the
             script's hash); each domain boots a qcow2 overlay on the cached raw image (its
             writes never reach the cache), 1 GiB, first agent answer in 15-30 s under TCG.

Import it as ``from lab import lab`` with the repo root on sys.path (tests/vm/conftest.py does),
or run it as a script: ``python3 lab/lab.py ...``.

Build and daemons
    build_guest(force=False) -> Paths            run build-guest.sh (both flavours); Paths(
                                                 build_dir, kernel, initrd, data_img,
                                                 kernel_version); .initrd_of(flavour)
    existing_paths() -> Paths                    the same without building (LabError if absent)
    fresh_data_disk(dest) -> Path                copy of the pristine ext4 data disk
    build_debian(force=False) -> Path            run build-debian.sh; the cache folder (base.img,
                                                 vmlinuz, initrd.img, kernel.version)
    ensure_libvirtd(timeout=30.0) -> None        start virtlogd/libvirtd if needed, wait for virsh;
                                                 calls fix_kvm_permissions() first
    fix_kvm_permissions() -> bool                /dev/kvm 0600 -> group kvm 0660 (as udev does);
                                                 else libvirt re-probes QEMU on every call (~10 s)
    which(tool) -> str | None                    shutil.which that also searches /usr/sbin, /sbin
    qemu_user() -> (user, group)                 who libvirt's qemu driver runs QEMU as

Raw agent socket (QEMU chardev, one client at a time)
    agent_sync(path, timeout=2.0) -> bool        connect + 0xFF + guest-sync-delimited(random id)
    agent_call(path, execute, arguments=None, timeout=10.0) -> dict
                                                 sync, then one command; returns the reply dict
                                                 ({"return": ...} or {"error": ...})

Plain QEMU
    PlainQemuGuest(workdir, *, noagent=False, dedicated=False, memory=256, block="",
                   flavour="host")               block: qemu-ga --block-rpcs LIST in the guest
        .socket_path      workdir/qga.sock   (org.qemu.guest_agent.0)
        .dedicated_socket workdir/qga1.sock  (org.qemu.guest_agent.1) or None
        .qmp_path         workdir/qmp.sock   (QMP monitor, e.g. for device_add / hot-plug)
        .console_log      workdir/console.log   .data_disk  workdir/data.img   .pid
        .boot_seconds     start to first agent reply of the last start()
        .start(wait_agent=True, timeout=BOOT_TIMEOUT, retries=1)  boot; kill-and-retry once
        .wait_agent(deadline) -> bool            deadline is a time.monotonic() value
        .stop()                                  SIGTERM then SIGKILL, by PID only
        context manager: start() on enter, stop() on exit
    measure_idle_cpu(workdir, flavour, settle, seconds) -> (boot_seconds, % of one core)

libvirt (URI = "qemu:///system"; names must start with "qgactl-test-" or "qgactl-demo")
    domain_dir(name) -> Path                     /var/lib/qgactl-lab/domains/NAME (lab-owned)
    prepare_domain_files(name, flavour="host") -> Path
                                                 copy kernel, the flavour's initrd, fresh data.img
                                                 there; make its chan/ folder owned by QEMU's user
    domain_xml(name, *, agent_channel=True, dedicated_channel_path=None, noagent=False,
               data_disk=<dir>/data.img, kernel=..., initrd=..., console_log=...) -> str
    define_and_start(name, xml, *, wait_agent=True, timeout=BOOT_TIMEOUT, retries=1,
                     uri=URI, define_only=False, flavour="host") -> float | None
                                                 (start->agent seconds)
                                                 destroy+undefine a leftover, prepare files,
                                                 define, start, wait for state='connected' AND a
                                                 real guest-ping; kill-and-retry once
    start_domain(name, *, agent_channel=True, dedicated=False, noagent=False, start=True,
                 wait_agent=None, timeout=BOOT_TIMEOUT, uri=URI, flavour="host") -> LabDomain
    destroy_and_undefine(name, uri=URI)          also removes domain_dir(name)
    cleanup_stale(uri=URI) -> list[str]          remove qgactl-test-<pid>-* domains whose pid died
    test_domain_name(suffix) -> str              "qgactl-test-<this pid>-<suffix>"
    list_domains(uri=URI) -> list[str]; domain_state(name, uri=URI) -> str | None
    LabDomain(str): the domain name, plus .name .uri .dir .console_log .data_disk
        .dedicated_socket (path or None) .boot_seconds .flavour; .live_xml()
        .channel_state(name) .wait_console(text=READY_LINE, timeout) .agent_ping(timeout=5)
        .destroy()
    live_xml(name, uri=URI) -> str; channel_state(name, channel, uri=URI) -> str | None

A second libvirt host
    SecondLibvirtd(workdir)                      libvirtd + virtlogd in a private mount
        .uri  .start(timeout=30)  .stop()        namespace; .uri is qemu+unix://...?socket=

CLI
    python3 lab/lab.py build | build-debian | libvirtd | demo-start NAME [--flavour F]
                       | stop NAME | cleanup
    python3 lab/lab.py idle-cpu [--flavour F] [--settle S] [--seconds S]
                                                 boot time and idle CPU of a plain QEMU guest
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

LAB_DIR = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("QGACTL_LAB_BUILD", LAB_DIR / "build"))
STATE_DIR = Path(os.environ.get("QGACTL_LAB_STATE", "/var/lib/qgactl-lab"))
URI = "qemu:///system"
AGENT0 = "org.qemu.guest_agent.0"
AGENT1 = "org.qemu.guest_agent.1"
BOOT_TIMEOUT = 90.0  # per attempt; a boot normally answers in 5-10 s under TCG
NAME_PREFIXES = ("qgactl-test-", "qgactl-demo")
QEMU_BIN = "qemu-system-x86_64"
KERNEL_CMDLINE = "console=ttyS0 panic=-1"
READY_LINE = "qgactl-lab: ready"
VCPUS = 2  # qemu-ga reads /sys/devices/system/cpu: cpu0 has no `online` file, cpu1 has
GUEST_MAC = "52:54:00:12:34:56"  # QEMU's default first MAC; /init gives eth0 10.0.2.15/24
FLAVOURS = {"host": "initrd.img", "qga10": "initrd-qga10.img"}  # flavour -> initrd in BUILD_DIR
DEFAULT_FLAVOUR = "host"
DEBIAN = "debian12"  # the real-distribution flavour (build-debian.sh), libvirt only
DEBIAN_CACHE = Path(os.environ.get("QGACTL_DEBIAN_CACHE", "/var/lib/qgactl-lab/debian12"))
DEBIAN_CMDLINE = "root=/dev/vda rw console=ttyS0 panic=-1"
DEBIAN_MEMORY_MIB = 1024
DEBIAN_BOOT_TIMEOUT = 180.0  # per attempt: 15 s on a quiet machine, 30 s while others boot


class LabError(RuntimeError):
    """The lab could not be built or started (missing tool, boot timeout, ...)."""


def _log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Paths:
    build_dir: Path
    kernel: Path
    initrd: Path  # flavour "host"; any flavour's: initrd_of()
    data_img: Path
    kernel_version: str

    def initrd_of(self, flavour: str) -> Path:
        if flavour not in FLAVOURS:
            raise LabError(f"unknown lab flavour {flavour!r} (one of {', '.join(FLAVOURS)})")
        return self.build_dir / FLAVOURS[flavour]


def build_guest(force: bool = False) -> Paths:
    """Build (or reuse) the guest in BUILD_DIR; raise LabError with the script's output."""
    cmd = ["bash", str(LAB_DIR / "build-guest.sh")] + (["--force"] if force else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise LabError(f"build-guest.sh failed ({proc.returncode}):\n{proc.stdout}")
    return existing_paths()


def build_debian(force: bool = False) -> Path:
    """Build (or reuse) the Debian 12 guest; its cache folder (LabError with the output)."""
    cmd = ["bash", str(LAB_DIR / "build-debian.sh")] + (["--force"] if force else [])
    env = {**os.environ, "QGACTL_DEBIAN_CACHE": str(DEBIAN_CACHE)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise LabError(f"build-debian.sh failed ({proc.returncode}):\n{proc.stderr}")
    return Path(proc.stdout.split()[-1])


def existing_paths() -> Paths:
    p = Paths(
        build_dir=BUILD_DIR,
        kernel=BUILD_DIR / "vmlinux",  # PVH-bootable ELF (build-guest.sh)
        initrd=BUILD_DIR / FLAVOURS[DEFAULT_FLAVOUR],
        data_img=BUILD_DIR / "data.img",
        kernel_version=(BUILD_DIR / "kernel.version").read_text().strip()
        if (BUILD_DIR / "kernel.version").exists()
        else "",
    )
    for f in (p.kernel, p.data_img, *(p.initrd_of(flavour) for flavour in FLAVOURS)):
        if not f.is_file():
            raise LabError(f"{f} missing: run lab/build-guest.sh")
    return p


def fresh_data_disk(dest: os.PathLike[str] | str) -> Path:
    """Copy the pristine data disk to dest (each guest writes to its own copy)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(existing_paths().data_img, dest)
    return dest


def which(tool: str) -> str | None:
    """shutil.which that also looks in /usr/sbin and /sbin (not always on a user's PATH)."""
    extra = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(tool, path=os.environ.get("PATH", os.defpath) + os.pathsep + extra)


def _need(tool: str) -> str:
    path = which(tool)
    if not path:
        raise LabError(f"{tool} not found: run lab/install-deps.sh")
    return path


# --------------------------------------------------------------------------- raw agent socket


def _read_lines_until(sock: socket.socket, deadline: float, want: Any) -> Any:
    """Read lines (splitting on \\n, dropping everything before a 0xFF) until want(obj) is
    truthy; return that object, or None at the deadline / on EOF."""
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if b"\xff" in line:
                line = line.rsplit(b"\xff", 1)[1]
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if want(obj):
                return obj
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not data:
            return None
        buf += data


def _connect_and_sync(path: str | os.PathLike[str], timeout: float) -> socket.socket | None:
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sync_id = random.getrandbits(62)
        req = {"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}
        sock.sendall(b"\xff" + json.dumps(req).encode())
        ok = _read_lines_until(
            sock, deadline, lambda o: isinstance(o, dict) and o.get("return") == sync_id
        )
    except OSError:
        ok = None
    if ok is None:
        sock.close()
        return None
    return sock


def agent_sync(path: str | os.PathLike[str], timeout: float = 2.0) -> bool:
    """True when an agent answers guest-sync-delimited on the socket within timeout."""
    sock = _connect_and_sync(path, timeout)
    if sock is None:
        return False
    sock.close()
    return True


def agent_call(
    path: str | os.PathLike[str],
    execute: str,
    arguments: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Sync, send one command, return its reply dict. Raises TimeoutError on no answer."""
    deadline = time.monotonic() + timeout
    sock = _connect_and_sync(path, timeout)
    if sock is None:
        raise TimeoutError(f"no agent answered guest-sync-delimited on {path} in {timeout}s")
    try:
        req: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            req["arguments"] = arguments
        sock.sendall(json.dumps(req).encode())
        reply = _read_lines_until(
            sock, deadline, lambda o: isinstance(o, dict) and ("return" in o or "error" in o)
        )
    finally:
        sock.close()
    if reply is None:
        raise TimeoutError(f"no reply to {execute} on {path} in {timeout}s")
    return reply  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- plain QEMU


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class PlainQemuGuest:
    """The lab guest under qemu-system-x86_64 (TCG), agent socket(s) in workdir."""

    def __init__(
        self,
        workdir: os.PathLike[str] | str,
        *,
        noagent: bool = False,
        dedicated: bool = False,
        memory: int = 256,
        block: str = "",
        flavour: str = DEFAULT_FLAVOUR,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.flavour = flavour
        self.noagent = noagent
        self.block = block  # qemu-ga --block-rpcs in the guest, e.g. "guest-exec,guest-file-open"
        self.memory = memory
        self.socket_path = self.workdir / "qga.sock"
        self.dedicated_socket = self.workdir / "qga1.sock" if dedicated else None
        self.qmp_path = self.workdir / "qmp.sock"
        self.console_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        self.data_disk = self.workdir / "data.img"
        self.pidfile = self.workdir / "qemu.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.boot_seconds: float | None = None  # start to first agent reply (last attempt)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        paths = existing_paths()
        cmdline = KERNEL_CMDLINE + (" qgactl.noagent" if self.noagent else "")
        cmdline += f" qgactl.block={self.block}" if self.block else ""
        cmd = [
            _need(QEMU_BIN),
            "-name", f"qgactl-lab,process=qgactl-lab-{self.workdir.name}",
            "-machine", "pc,accel=tcg", "-m", str(self.memory), "-smp", str(VCPUS),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{self.console_log}",
            "-kernel", str(paths.kernel), "-initrd", str(paths.initrd_of(self.flavour)),
            "-append", cmdline,
            "-drive", f"file={self.data_disk},if=virtio,format=raw",
            "-netdev", "user,id=net0,restrict=on",
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "virtio-serial-pci,id=virtio-serial0",
            "-chardev", f"socket,id=qga0,path={self.socket_path},server=on,wait=off",
            "-device",
            f"virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,name={AGENT0}",
        ]  # fmt: skip
        if self.dedicated_socket:
            cmd += [
                "-chardev", f"socket,id=qga1,path={self.dedicated_socket},server=on,wait=off",
                "-device",
                f"virtserialport,bus=virtio-serial0.0,nr=2,chardev=qga1,name={AGENT1}",
            ]  # fmt: skip
        cmd += ["-pidfile", str(self.pidfile)]
        return cmd

    def _kill_leftover(self) -> None:
        """Kill a QEMU left by an earlier run in this workdir (verified by its command line)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if _pid_alive(pid) and str(self.socket_path) in _pid_cmdline(pid):
            _log(f"killing leftover QEMU pid {pid} ({self.workdir})")
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not _pid_alive(pid):
                    break
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)

    def _launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        for p in (self.socket_path, self.qmp_path, self.dedicated_socket):
            if p is not None:
                p.unlink(missing_ok=True)
        fresh_data_disk(self.data_disk)
        with open(self.console_log, "ab") as f:
            f.write(f"\n==== lab: boot at {time.strftime('%H:%M:%S')} ====\n".encode())
        with open(self.qemu_log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self._started = time.monotonic()

    def wait_agent(self, deadline: float) -> bool:
        """Poll until the .0 agent answers a guest-sync-delimited or deadline (monotonic)."""
        per_try = 1.0  # grows: a loaded host may answer slower than any fixed guess
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self.socket_path.exists() and agent_sync(
                self.socket_path, min(per_try, max(0.1, deadline - time.monotonic()))
            ):
                return True
            per_try = min(per_try * 1.5, 5.0)
            time.sleep(0.1)
        return False

    def start(
        self, wait_agent: bool = True, timeout: float = BOOT_TIMEOUT, retries: int = 1
    ) -> PlainQemuGuest:
        for attempt in range(retries + 1):
            self._launch()
            if not wait_agent or self.noagent:
                return self
            if self.wait_agent(time.monotonic() + timeout):
                self.boot_seconds = time.monotonic() - self._started
                return self
            rc = self.proc.poll() if self.proc else None
            _log(
                f"plain QEMU attempt {attempt + 1}: no agent after {timeout:.0f}s "
                f"(qemu exit={rc}); console: {self.console_log}"
            )
            self.stop()
        raise LabError(
            f"plain QEMU guest: agent never answered ({retries + 1} attempts of {timeout:.0f}s);"
            f" console log {self.console_log}, qemu log {self.qemu_log}:\n"
            + _tail(self.qemu_log)
            + _tail(self.console_log)
        )

    def stop(self) -> None:
        """Stop the QEMU process this object started (by PID, never by name)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.pidfile.unlink(missing_ok=True)

    def __enter__(self) -> PlainQemuGuest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def measure_idle_cpu(
    workdir: os.PathLike[str] | str, flavour: str, settle: float, seconds: float
) -> tuple[float, float]:
    """Boot a plain QEMU guest, let it settle, then measure its QEMU's CPU time over `seconds`:
    (boot seconds, percent of one host core). CPU time, not wall time: other load on the host
    does not count."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (proc(5))

    with PlainQemuGuest(workdir, flavour=flavour) as guest:
        assert guest.pid is not None and guest.boot_seconds is not None
        time.sleep(settle)
        before = cpu_seconds(guest.pid)
        time.sleep(seconds)
        used = cpu_seconds(guest.pid) - before
        return guest.boot_seconds, 100 * used / seconds


def _tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return f"--- last lines of {path} ---\n" + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- libvirt


def _virsh(
    *args: str, uri: str = URI, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    cmd = [_need("virsh"), "-q", "-c", uri, *args]
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"virsh {' '.join(args)} timed out after {timeout}s") from e
    if check and proc.returncode != 0:
        raise LabError(f"virsh {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _socket_answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def fix_kvm_permissions() -> bool:
    """Give /dev/kvm the mode Debian's udev rule gives it (group kvm, 0660) when it is 0600.

    Without udev, /dev/kvm is root:root 0600 here.  libvirt 9.0 then probes QEMU's capabilities
    with KVM enabled (QEMU opens /dev/kvm before dropping to libvirt-qemu) but finds /dev/kvm
    unusable for libvirt-qemu afterwards, declares its cache outdated and re-probes on EVERY
    define/start/domcapabilities call: 5-12 s each instead of 10 ms.  Lab domains are TCG
    (<domain type='qemu'>) either way.  Returns True when it changed something."""
    import grp

    kvm = "/dev/kvm"
    try:
        st = os.stat(kvm)
        gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return False
    if st.st_gid == gid and st.st_mode & 0o060 == 0o060:
        return False
    try:
        os.chown(kvm, -1, gid)
        os.chmod(kvm, (st.st_mode & 0o7777) | 0o060)
    except OSError as e:
        _log(f"cannot fix {kvm} permissions ({e}); libvirt calls will be slow")
        return False
    _log(f"{kvm}: group kvm, mode 0660 (as udev would; keeps libvirt's capability cache valid)")
    return True


def ensure_libvirtd(timeout: float = 30.0) -> None:
    """Start virtlogd and libvirtd (no systemd) unless they answer; wait for virsh version.
    Also applies fix_kvm_permissions() (see there: otherwise every define/start takes ~10 s)."""
    fix_kvm_permissions()
    if _virsh("version", check=False, timeout=10).returncode == 0:
        return
    for daemon, sock in (
        ("virtlogd", "/run/libvirt/virtlogd-sock"),
        ("libvirtd", "/run/libvirt/libvirt-sock"),
    ):
        if os.path.exists(sock) and _socket_answers(sock):
            continue
        if os.path.exists(sock):  # stale socket of a dead daemon
            os.unlink(sock)
        _log(f"starting {daemon}")
        # output to a file, not a pipe: a daemon keeping the pipe open would hang us
        with tempfile.TemporaryFile("w+") as out:
            rc = subprocess.call([_need(daemon), "-d"], stdout=out, stderr=out, timeout=60)
            if rc != 0:
                out.seek(0)
                raise LabError(f"{daemon} -d failed ({rc}): {out.read().strip()}")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        p = _virsh("version", check=False, timeout=10)
        if p.returncode == 0:
            return
        last = p.stderr.strip()
        time.sleep(0.3)
    raise LabError(f"libvirtd did not answer `virsh -c {URI} version` in {timeout}s: {last}")


class SecondLibvirtd:
    """A second libvirt host on this machine, for fan-out over several hosts: libvirtd and
    virtlogd in a mount namespace of their own, with private /run/libvirt, /var/lib/libvirt,
    /var/cache/libvirt, /var/log/libvirt and /etc/libvirt/qemu (so it sees none of the first
    host's domains). Reached as ``.uri`` (qemu+unix:///system?socket=...); stopped by PID."""

    PRIVATE = (
        ("run", "/run/libvirt"),
        ("lib", "/var/lib/libvirt"),
        ("cache", "/var/cache/libvirt"),
        ("log", "/var/log/libvirt"),
        ("etc-qemu", "/etc/libvirt/qemu"),
    )

    def __init__(self, workdir: os.PathLike[str] | str) -> None:
        self.dir = Path(workdir).resolve()
        self.uri = f"qemu+unix:///system?socket={self.dir / 'run' / 'libvirt-sock'}"

    def start(self, timeout: float = 30.0) -> None:
        ensure_libvirtd()  # the first host, and /dev/kvm's permissions
        user, group = qemu_user()
        for name, _ in self.PRIVATE:
            (self.dir / name).mkdir(parents=True, exist_ok=True)
        (self.dir / "lib" / "qemu").mkdir(exist_ok=True)
        shutil.chown(self.dir / "lib" / "qemu", user, group)
        (self.dir / "log" / "qemu").mkdir(exist_ok=True)
        mounts = "".join(f"mount --bind {self.dir / n} {t}\n" for n, t in self.PRIVATE)
        script = (
            f"set -e\n{mounts}"
            f"virtlogd -d -p {self.dir / 'virtlogd.pid'}\n"
            f"libvirtd -d -p {self.dir / 'libvirtd.pid'}\n"
        )
        subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while _virsh("version", uri=self.uri, check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise LabError(f"the second libvirtd did not answer on {self.uri} in {timeout}s")
            time.sleep(0.3)

    def stop(self) -> None:
        names = _virsh("list", "--all", "--name", uri=self.uri, check=False).stdout.split()
        for name in names:
            if name.startswith(NAME_PREFIXES):
                destroy_and_undefine(name, uri=self.uri)
        for daemon in ("libvirtd", "virtlogd"):
            pidfile = self.dir / f"{daemon}.pid"
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def qemu_user() -> tuple[str, str]:
    """(user, group) libvirt's qemu driver runs QEMU as (qemu.conf, else Debian's default)."""
    user, group = "libvirt-qemu", "libvirt-qemu"
    try:
        text = Path("/etc/libvirt/qemu.conf").read_text()
    except OSError:
        text = ""
    m = re.search(r'^\s*user\s*=\s*"([^"]+)"', text, re.M)
    if m:
        user = m.group(1)
    m = re.search(r'^\s*group\s*=\s*"([^"]+)"', text, re.M)
    if m:
        group = m.group(1)
    return user, group


def _chown_to_qemu(path: Path) -> None:
    import grp
    import pwd

    user, group = qemu_user()
    try:
        uid = int(user[1:]) if user.startswith("+") else pwd.getpwnam(user).pw_uid
    except KeyError:
        uid = -1
    try:
        gid = int(group[1:]) if group.startswith("+") else grp.getgrnam(group).gr_gid
    except KeyError:
        gid = pwd.getpwuid(uid).pw_gid if uid >= 0 else -1
    if uid < 0:
        os.chmod(path, 0o1777)  # unknown QEMU user: let anyone create its socket here
        return
    os.chown(path, uid, gid)
    os.chmod(path, 0o750)


def _check_name(name: str) -> None:
    if not name.startswith(NAME_PREFIXES) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise LabError(f"lab domain names must start with {NAME_PREFIXES} (got {name!r})")


def domain_dir(name: str) -> Path:
    return STATE_DIR / "domains" / name


def prepare_domain_files(name: str, flavour: str = DEFAULT_FLAVOUR) -> Path:
    """Fresh lab-owned copies of kernel, the flavour's initrd and data disk for one domain
    (libvirt chowns the files a running domain uses), plus chan/ for a dedicated socket, owned
    by QEMU's user. debian12: the guest's kernel and initrd, and disk.qcow2, an overlay whose
    backing file is the cached image (which the domain never writes)."""
    _check_name(name)
    d = domain_dir(name)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, mode=0o755)
    for p in (STATE_DIR, STATE_DIR / "domains"):
        os.chmod(p, 0o755)
    (d / "chan").mkdir()
    _chown_to_qemu(d / "chan")
    if flavour == DEBIAN:
        cache = build_debian()
        shutil.copyfile(cache / "vmlinuz", d / "vmlinuz")
        shutil.copyfile(cache / "initrd.img", d / "initrd.img")
        subprocess.run(
            [_need("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "raw",
             "-b", str(cache / "base.img"), str(d / "disk.qcow2")],
            check=True,
        )  # fmt: skip
        return d
    paths = existing_paths()
    initrd = paths.initrd_of(flavour)
    shutil.copyfile(paths.kernel, d / "vmlinux")
    # The compressed kernel too: an S3 resume needs the BIOS path (see start_domain's bzimage).
    shutil.copyfile(paths.build_dir / "vmlinuz", d / "vmlinuz")
    shutil.copyfile(initrd, d / "initrd.img")
    shutil.copyfile(paths.data_img, d / "data.img")
    return d


def domain_xml(
    name: str,
    *,
    agent_channel: bool = True,
    dedicated_channel_path: os.PathLike[str] | str | None = None,
    noagent: bool = False,
    data_disk: os.PathLike[str] | str | None = None,
    kernel: os.PathLike[str] | str | None = None,
    initrd: os.PathLike[str] | str | None = None,
    console_log: os.PathLike[str] | str | None = None,
    memory_mib: int = 256,
    debian: bool = False,
    discard: bool = False,
) -> str:
    """Domain XML for the lab guest (TCG, pc, ACPI, direct kernel boot, virtio-serial
    controller always present so channels can be hot-plugged, 2 vCPUs, on_reboot restart so
    agent reboots come back). Paths default to domain_dir.

    The NIC is <interface type='udp'> to 127.0.0.1:9 (QEMU's -netdev socket,udp=): no bridge,
    tap or libvirt network on the host, and whatever the guest sends ends at loopback.
    <interface type='user'> works in libvirt 9.0's qemu:///system too, but libvirt cannot ask
    for slirp's restrict=on, so a guest could reach the outside through it.

    ``debian``: the debian12 flavour: its own kernel, disk.qcow2 as root file system, 1 GiB,
    and the serial port a pty (for `virsh console` to its getty) logged to console_log.
    ``discard``: the data disk passes the guest's discards (fstrim) on to its image."""
    d = domain_dir(name)
    kernel = kernel or d / ("vmlinuz" if debian else "vmlinux")
    initrd = initrd or d / "initrd.img"
    data_disk = data_disk or d / ("disk.qcow2" if debian else "data.img")
    console_log = console_log or d / "console.log"
    cmdline = DEBIAN_CMDLINE if debian else KERNEL_CMDLINE
    cmdline += " qgactl.noagent" if noagent else ""
    disk_format = "qcow2" if debian else "raw"
    memory_mib = DEBIAN_MEMORY_MIB if debian else memory_mib
    serial_type = "pty" if debian else "file"

    def q(v: object) -> str:
        return quoteattr(os.fspath(v) if isinstance(v, os.PathLike) else str(v))

    chans = ""
    if agent_channel:
        chans += f"""
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='{AGENT0}'/>
    </channel>"""
    if dedicated_channel_path:
        chans += f"""
    <channel type='unix'>
      <source mode='bind' path={q(dedicated_channel_path)}/>
      <target type='virtio' name='{AGENT1}'/>
    </channel>"""
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{VCPUS}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(os.fspath(kernel))}</kernel>
    <initrd>{escape(os.fspath(initrd))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='{disk_format}'{" discard='unmap'" if discard else ""}/>
      <source file={q(data_disk)}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='udp'>
      <mac address='{GUEST_MAC}'/>
      <source address='127.0.0.1' port='9'>
        <local address='127.0.0.1' port='0'/>
      </source>
      <model type='virtio'/>
    </interface>
    <controller type='virtio-serial' index='0'/>{chans}
    <serial type='{serial_type}'>
      {_console_source(serial_type, q(console_log))}
      <target port='0'/>
    </serial>
    <console type='{serial_type}'>
      {_console_source(serial_type, q(console_log))}
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _console_source(serial_type: str, quoted_log: str) -> str:
    if serial_type == "pty":
        return f"<log file={quoted_log} append='on'/>"
    return f"<source path={quoted_log} append='on'/>"


def live_xml(name: str, uri: str = URI) -> str:
    return _virsh("dumpxml", name, uri=uri).stdout


def _channels(xml_text: str) -> dict[str, dict[str, str | None]]:
    root = ET.fromstring(xml_text)
    out: dict[str, dict[str, str | None]] = {}
    for ch in root.findall("./devices/channel"):
        tgt = ch.find("target")
        src = ch.find("source")
        if tgt is None or tgt.get("name") is None:
            continue
        out[tgt.get("name", "")] = {
            "state": tgt.get("state"),
            "path": src.get("path") if src is not None else None,
        }
    return out


def channel_state(name: str, channel: str = AGENT0, uri: str = URI) -> str | None:
    """'connected' / 'disconnected' from the live XML, None if there is no such channel."""
    return _channels(live_xml(name, uri)).get(channel, {}).get("state")


def domain_state(name: str, uri: str = URI) -> str | None:
    p = _virsh("domstate", name, uri=uri, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def destroy_and_undefine(name: str, uri: str = URI, remove_files: bool = True) -> None:
    """Destroy (if running) and undefine a lab domain; remove its lab folder."""
    _check_name(name)
    _virsh("destroy", name, uri=uri, check=False)
    _virsh("undefine", name, uri=uri, check=False)
    if remove_files:
        shutil.rmtree(domain_dir(name), ignore_errors=True)


def _agent_ping_virsh(name: str, uri: str, timeout: int = 5) -> bool:
    p = _virsh(
        "qemu-agent-command", name, '{"execute":"guest-ping"}', "--timeout", str(timeout),
        uri=uri, check=False, timeout=timeout + 30,
    )  # fmt: skip
    return p.returncode == 0 and '"return"' in p.stdout


def _wait_agent_libvirt(name: str, uri: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            state = channel_state(name, AGENT0, uri)
        except LabError:
            return False  # domain gone
        if state == "connected" and _agent_ping_virsh(name, uri):
            return True
        time.sleep(0.3)
    return False


def define_and_start(
    name: str,
    xml: str,
    *,
    wait_agent: bool = True,
    timeout: float = BOOT_TIMEOUT,
    retries: int = 1,
    uri: str = URI,
    define_only: bool = False,
    flavour: str = DEFAULT_FLAVOUR,
) -> float | None:
    """Define (replacing a leftover of the same name) and start; with wait_agent, wait for
    state='connected' and a real guest-ping, killing and restarting once on timeout.
    Returns seconds from start to first agent reply (None without wait_agent)."""
    _check_name(name)
    ensure_libvirtd()
    if domain_state(name, uri) is not None:
        destroy_and_undefine(name, uri)
    d = prepare_domain_files(name, flavour)
    (d / "domain.xml").write_text(xml)
    _virsh("define", str(d / "domain.xml"), uri=uri)
    if define_only:
        return None
    console = d / "console.log"
    for attempt in range(retries + 1):
        t0 = time.monotonic()
        _virsh("start", name, uri=uri)
        if not wait_agent:
            return None
        if _wait_agent_libvirt(name, uri, t0 + timeout):
            return time.monotonic() - t0
        _log(
            f"domain {name} attempt {attempt + 1}: no agent after {timeout:.0f}s; "
            f"state={domain_state(name, uri)}; console: {console}"
        )
        _virsh("destroy", name, uri=uri, check=False)
    raise LabError(
        f"domain {name}: agent never answered ({retries + 1} attempts of {timeout:.0f}s)\n"
        + _tail(console)
    )


class LabDomain(str):
    """A lab domain: the str is its name (use it wherever a domain name goes)."""

    name: str
    uri: str
    dir: Path
    console_log: Path
    data_disk: Path
    dedicated_socket: Path | None
    boot_seconds: float | None
    flavour: str

    def __new__(
        cls, name: str, *, uri: str = URI, dedicated_socket: Path | None = None,
        boot_seconds: float | None = None, flavour: str = DEFAULT_FLAVOUR,
    ) -> LabDomain:  # fmt: skip
        self = super().__new__(cls, name)
        self.name = name
        self.uri = uri
        self.dir = domain_dir(name)
        self.console_log = self.dir / "console.log"
        self.data_disk = self.dir / "data.img"
        self.dedicated_socket = dedicated_socket
        self.boot_seconds = boot_seconds
        self.flavour = flavour
        return self

    def live_xml(self) -> str:
        return live_xml(self.name, self.uri)

    def channel_state(self, channel: str = AGENT0) -> str | None:
        return channel_state(self.name, channel, self.uri)

    def wait_console(self, text: str = READY_LINE, timeout: float = BOOT_TIMEOUT) -> bool:
        """Wait until the guest console log contains text (default: init's ready line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.console_log.read_text(errors="replace"):
                    return True
            except OSError:
                pass
            time.sleep(0.3)
        return False

    def agent_ping(self, timeout: int = 5) -> bool:
        return _agent_ping_virsh(self.name, self.uri, timeout)

    def destroy(self) -> None:
        destroy_and_undefine(self.name, self.uri)


def start_domain(
    name: str,
    *,
    agent_channel: bool = True,
    dedicated: bool = False,
    noagent: bool = False,
    start: bool = True,
    wait_agent: bool | None = None,
    timeout: float = BOOT_TIMEOUT,
    uri: str = URI,
    flavour: str = DEFAULT_FLAVOUR,
    bzimage: bool = False,
    discard: bool = False,
) -> LabDomain:
    """Build the XML for a lab domain and define (+ start) it; returns a LabDomain.

    ``bzimage``: boot the compressed kernel (about 7 s slower under TCG) instead of the PVH
    vmlinux: a PVH-booted guest does not come back from an S3 suspend."""
    if wait_agent is None:
        wait_agent = agent_channel and not noagent
    dedicated_path = domain_dir(name) / "chan" / "qga.1.sock" if dedicated else None
    if flavour == DEBIAN and timeout == BOOT_TIMEOUT:
        timeout = DEBIAN_BOOT_TIMEOUT
    xml = domain_xml(
        name, agent_channel=agent_channel, dedicated_channel_path=dedicated_path,
        noagent=noagent, kernel=domain_dir(name) / "vmlinuz" if bzimage else None,
        debian=flavour == DEBIAN, discard=discard,
    )  # fmt: skip
    secs = define_and_start(
        name, xml, wait_agent=wait_agent, timeout=timeout, uri=uri, define_only=not start,
        flavour=flavour,
    )  # fmt: skip
    return LabDomain(
        name, uri=uri, dedicated_socket=dedicated_path, boot_seconds=secs, flavour=flavour
    )


def list_domains(uri: str = URI) -> list[str]:
    p = _virsh("list", "--all", "--name", uri=uri, check=False)
    return [n.strip() for n in p.stdout.splitlines() if n.strip()]


def cleanup_stale(uri: str = URI) -> list[str]:
    """Destroy+undefine qgactl-test-<pid>-* domains whose creating process is gone."""
    removed = []
    for n in list_domains(uri):
        m = re.match(r"qgactl-test-(\d+)-", n)
        if m and not _pid_alive(int(m.group(1))):
            destroy_and_undefine(n, uri)
            removed.append(n)
    return removed


def test_domain_name(suffix: str, pid: int | None = None) -> str:
    """qgactl-test-<pid>-<suffix>: cleanup_stale removes it once <pid> has exited."""
    return f"qgactl-test-{pid or os.getpid()}-{suffix}"


test_domain_name.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# --------------------------------------------------------------------------- CLI


def _main(argv: Iterable[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="lab.py", description="qgactl lab guest")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the guest into lab/build")
    b.add_argument("--force", action="store_true")
    bd = sub.add_parser("build-debian", help="build (or find) the cached Debian 12 guest")
    bd.add_argument("--force", action="store_true")
    sub.add_parser("libvirtd", help="start virtlogd + libvirtd if needed")
    ds = sub.add_parser("demo-start", help="build, start libvirtd, boot a domain with .0 + .1")
    ds.add_argument("name")
    ds.add_argument("--noagent", action="store_true")
    ds.add_argument("--flavour", choices=sorted([*FLAVOURS, DEBIAN]), default=DEFAULT_FLAVOUR)
    st = sub.add_parser("stop", help="destroy + undefine a lab domain")
    st.add_argument("name")
    sub.add_parser("cleanup", help="remove qgactl-test-<pid>-* domains of dead processes")
    ic = sub.add_parser("idle-cpu", help="boot a plain QEMU guest; its boot time and idle CPU")
    ic.add_argument("--flavour", choices=sorted(FLAVOURS), default=DEFAULT_FLAVOUR)
    ic.add_argument("--settle", type=float, default=20.0, help="seconds after boot, not counted")
    ic.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    args = ap.parse_args(list(argv) if argv is not None else None)

    try:
        if args.cmd == "build":
            t0 = time.monotonic()
            p = build_guest(force=args.force)
            _log(f"guest ready in {p.build_dir} ({time.monotonic() - t0:.1f}s)")
        elif args.cmd == "build-debian":
            t0 = time.monotonic()
            cache = build_debian(force=args.force)
            _log(f"Debian 12 guest ready in {cache} ({time.monotonic() - t0:.1f}s)")
        elif args.cmd == "libvirtd":
            ensure_libvirtd()
            _log("libvirtd answers on " + URI)
        elif args.cmd == "demo-start":
            _check_name(args.name)
            t0 = time.monotonic()
            _log("building guest")
            build_guest()
            _log("checking libvirtd")
            ensure_libvirtd()
            _log(f"starting domain {args.name} (TCG boot, usually 5-15 s)")
            dom = start_domain(
                args.name, dedicated=True, noagent=args.noagent, flavour=args.flavour
            )
            if dom.boot_seconds is not None:
                _log(f"agent answered {dom.boot_seconds:.1f}s after start")
            _log(f"ready in {time.monotonic() - t0:.1f}s")
            print(f"domain={dom.name}")
            print(f"uri={dom.uri}")
            print(f"dedicated_socket={dom.dedicated_socket}")
            print(f"console_log={dom.console_log}")
        elif args.cmd == "stop":
            destroy_and_undefine(args.name)
            _log(f"{args.name} destroyed and undefined")
        elif args.cmd == "cleanup":
            for n in cleanup_stale():
                _log(f"removed {n}")
        elif args.cmd == "idle-cpu":
            build_guest()
            with tempfile.TemporaryDirectory(prefix="qgactl-lab-idle-") as workdir:
                boot, share = measure_idle_cpu(workdir, args.flavour, args.settle, args.seconds)
            print(f"flavour={args.flavour} vcpus={VCPUS} boot_seconds={boot:.1f} "
                  f"idle_cpu_percent_of_one_core={share:.2f}")  # fmt: skip
    except LabError as e:
        print(f"lab: ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
