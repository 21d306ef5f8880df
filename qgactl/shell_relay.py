"""The guest side of `qgactl shell`: a pty relay between a virtio-serial port and a login shell.

qgactl sends this file's source to the guest and runs it through guest-exec as
``python3 -c SOURCE CONFIG`` (as root, qemu-ga's user), so it is stdlib only and runs on the
python3 of any distribution still supported (3.6+: no walrus, no os.login_tty). CONFIG is JSON:
port, user, cwd, argv (empty: the user's login shell), env (TERM, LANG, LC_*), rows, cols.

Framing on the port, both ways (shell.py imports it from here): a 3-byte header, one type
byte and a 16-bit big-endian length, then the payload.
    host -> guest   d DATA (keys)          w ROWS COLS (two u16: a resize; SIGWINCH follows)
    guest -> host   d DATA (pty output)    x STATUS (i32: exit code, 128+N for a signal)
                    e TEXT (could not start the session: no such user, no such directory)

The session ends, and everything in it is killed (the shell's session: SIGHUP through the
pty's hangup, then SIGKILL after a grace period), when the shell exits or when the host end of
the port closes: the port then polls as POLLHUP and reads return 0 (virtio_console), which is
how a `kill -9` of qgactl, a Ctrl-] or a lost libvirt connection reaches the guest.
"""

# ruff: noqa: UP006, UP035  (typing.Dict/List/Tuple: builtin generics need Python 3.9, guests have 3.6)
import fcntl
import json
import locale
import os
import pwd
import select
import signal
import struct
import sys
import termios
import time
from typing import Any, Dict, List, Tuple

if __name__ != "__main__":  # on the host; in the guest portlink.guest_source sent it ahead
    from qgactl.guest_port import open_port

HEADER = struct.Struct("!cH")
WINSIZE = struct.Struct("!HH")
STATUS = struct.Struct("!i")
MAX_PAYLOAD = 0xFFFF
HANGUP_GRACE = 1.0  # SIGHUP, then SIGKILL for what is still in the session
PATH_ROOT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PATH_USER = "/usr/local/bin:/usr/bin:/bin"


def send(port: int, kind: bytes, payload: bytes = b"") -> None:
    for start in range(0, max(len(payload), 1), MAX_PAYLOAD):
        chunk = payload[start : start + MAX_PAYLOAD]
        frame = HEADER.pack(kind, len(chunk)) + chunk
        while frame:
            frame = frame[os.write(port, frame) :]


def split_frames(buffered: bytes) -> Tuple[List[Tuple[bytes, bytes]], bytes]:
    """The whole frames at the start of ``buffered`` as (type, payload), and the rest."""
    frames = []
    while len(buffered) >= HEADER.size:
        kind, size = HEADER.unpack_from(buffered)
        if len(buffered) < HEADER.size + size:
            break
        frames.append((kind, buffered[HEADER.size : HEADER.size + size]))
        buffered = buffered[HEADER.size + size :]
    return frames, buffered


def guest_locale(env: Dict[str, str]) -> Dict[str, str]:
    """The host's LANG/LC_* where the guest has that locale, else C.UTF-8."""
    out = {}  # type: Dict[str, str]
    for key, value in env.items():
        if key == "LANG" or key.startswith("LC_"):
            try:
                locale.setlocale(locale.LC_CTYPE, value)
            except locale.Error:
                value = "C.UTF-8"
        out[key] = value
    locale.setlocale(locale.LC_CTYPE, "C")
    return out


def guest_term(term: str) -> str:
    """The host's TERM where the guest has its terminfo entry, else one it surely has."""
    for folder in ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"):
        if term and os.path.exists(os.path.join(folder, term[:1], term)):
            return term
    return "xterm-256color" if os.path.exists("/usr/share/terminfo/x/xterm-256color") else "vt100"


def session_members(sid: int) -> List[int]:
    pids = []  # type: List[int]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry))
    return pids


def end_session(master: int, child: int) -> None:
    """Hang up the pty (SIGHUP to the session, as a terminal closing does), then kill what is
    left of the session (nohup'd jobs too): nothing of it outlives the session."""
    try:
        os.close(master)
    except OSError:
        pass
    deadline = time.monotonic() + HANGUP_GRACE
    while time.monotonic() < deadline and session_members(child):
        time.sleep(0.05)
    for pid in session_members(child):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(child, os.WNOHANG)
    except OSError:
        pass


def start_child(config: Dict[str, Any], master: int, slave: int) -> int:
    pw = pwd.getpwnam(config["user"])
    shell = pw.pw_shell or "/bin/sh"
    argv = config["argv"] or ["-" + os.path.basename(shell)]
    program = config["argv"][0] if config["argv"] else shell
    env = {
        "HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name, "SHELL": shell,
        "PATH": PATH_ROOT if pw.pw_uid == 0 else PATH_USER,
    }  # fmt: skip
    env.update(guest_locale(config["env"]))
    env["TERM"] = guest_term(env.get("TERM", ""))
    cwd = config["cwd"] or pw.pw_dir
    pid = os.fork()
    if pid:
        return pid
    try:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.initgroups(pw.pw_name, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        os.chdir(cwd)
        os.execvpe(program, argv, env)
    except OSError as exc:
        os.write(2, f"qgactl shell: {program}: {exc.strerror}\r\n".encode())
    os._exit(127)


def refuse(port: int, message: str) -> None:
    send(port, b"e", message.encode())
    sys.exit(1)


def main() -> int:
    config = json.loads(sys.argv[1])
    port = open_port(config["port"])
    try:
        pw = pwd.getpwnam(config["user"])
    except KeyError:
        refuse(port, f"no user {config['user']} in the guest")
    cwd = config["cwd"] or pw.pw_dir
    if not os.path.isdir(cwd):
        refuse(port, f"no directory {cwd} in the guest")
    master, slave = os.openpty()
    size = struct.pack("HHHH", config["rows"], config["cols"], 0, 0)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    child = start_child(config, master, slave)
    os.close(slave)
    try:
        status = relay(port, master, child)
        send(port, b"x", STATUS.pack(status))
        return status
    finally:  # however it ended (the port unplugged, an error): nothing of it stays
        end_session(master, child)


def relay(port: int, master: int, child: int) -> int:
    """Copy keys to the pty and output to the port until the shell exits: its status
    (129, a hangup, when qgactl's end closes first)."""
    buffered = b""
    pty_open = True
    while True:
        ready = select.select([port] + ([master] if pty_open else []), [], [], 0.2)[0]
        if port in ready:
            data = os.read(port, 65536)
            if not data:  # qgactl's end closed
                return 129
            received, buffered = split_frames(buffered + data)
            for kind, payload in received:
                if kind == b"d":
                    while payload:
                        payload = payload[os.write(master, payload) :]
                elif kind == b"w":
                    rows, cols = WINSIZE.unpack(payload)
                    winsize = struct.pack("HHHH", rows, cols, 0, 0)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)  # the kernel sends SIGWINCH
        if master in ready:
            pty_open = forward_output(port, master)
        pid, wait_status = os.waitpid(child, os.WNOHANG)
        if pid:
            while pty_open and select.select([master], [], [], 0)[0]:  # its last output
                pty_open = forward_output(port, master)
            if os.WIFEXITED(wait_status):
                return os.WEXITSTATUS(wait_status)
            return 128 + os.WTERMSIG(wait_status)


def forward_output(port: int, master: int) -> bool:
    """One read of the pty to the port; False once the pty has no process left (EIO)."""
    try:
        data = os.read(master, 65536)
    except OSError:
        data = b""
    if data:
        send(port, b"d", data)
    return bool(data)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError:  # the port went away under us (unplugged, host gone)
        sys.exit(255)
