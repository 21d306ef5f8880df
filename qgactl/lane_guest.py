"""The guest side of a lane (lane.py): requests over a virtio-serial port, served by one warm
python3.

qgactl's lane master sends this file's source to the guest and runs it through guest-exec as
``python3 -c SOURCE PORT`` (as root, qemu-ga's user), so it is stdlib only and runs on the
python3 of any distribution still supported (3.6+).

Framing on the port, both ways (lane.py imports it from here): a 9-byte header, one type byte,
a 32-bit channel and a 32-bit length, then the payload. Each request has a channel of its own,
so several run at once (one thread each).
    host -> guest   q JSON (a request: put, get or exec)    i DATA (its input; empty: the end)
                    k (the requester went: kill what the request started, drop a half file)
    guest -> host   r JSON (channel 0: ready)    h (channel 0: a heartbeat, every second)
                    o DATA (stdout, or the file)    e DATA (stderr)
                    x JSON (the request's end: {"status": N} or {"error": TEXT, "errno": N})

Requests: ``put`` {path, mode}: the input written beside PATH, fsynced and renamed over it.
``get`` {path}: the file as ``o``. ``exec`` {argv, env, python}: the command with the input on
its stdin; with ``python`` and argv[0] this very interpreter, the input is a Python program
run in a fork of this process (its stdlib already imported: no interpreter start per run).

``code_out`` and ``code_in`` carry the compiled-code cache (below) to the master and back, so
that the next lane into this guest starts with it.

The lane ends, and everything it started is killed, when the host end of the port closes: the
port then reads 0 bytes (virtio_console), which is how the master's exit, a kill -9 of it or a
lost libvirt connection reaches the guest.
"""

# ruff: noqa: UP006, UP035  (typing.Dict/List: builtin generics need Python 3.9, guests have 3.6)
import json
import marshal
import os
import pwd
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

if __name__ != "__main__":  # on the host; in the guest portlink.guest_source sent it ahead
    from qgactl.guest_port import open_port

HEADER = struct.Struct("!cII")
CHUNK = 256 * 1024  # a frame's payload at most
READ = 64 * 1024  # below malloc's mmap threshold: a bigger os.read maps and unmaps a buffer per
# call, and a virtio port returns ~4 KiB per read: 16 MiB in took 11 s instead of 2 under TCG
HEARTBEAT = 1.0
# Imported once here, so that a forked run finds them loaded (what Ansible's modules use).
WARM = [
    "__future__",
    "argparse",
    "base64",
    "collections.abc",
    "ctypes",
    "dataclasses",
    "datetime",
    "decimal",
    "encodings.cp437",
    "encodings.idna",
    "enum",
    "errno",
    "fcntl",
    "functools",
    "gettext",
    "glob",
    "grp",
    "hashlib",
    "importlib.util",
    "inspect",
    "io",
    "itertools",
    "json",
    "locale",
    "logging",
    "pkgutil",
    "platform",
    "pwd",
    "re",
    "runpy",
    "select",
    "selectors",
    "shlex",
    "shutil",
    "signal",
    "socket",
    "stat",
    "string",
    "subprocess",
    "syslog",
    "tempfile",
    "time",
    "traceback",
    "types",
    "typing",
    "uuid",
    "zipfile",
    "zipimport",
]


class FrameReader:
    """Frames out of a byte stream fed in pieces of any size (a virtio port reads a few KiB at
    a time): linear in the bytes fed, payloads joined once."""

    def __init__(self, limit: int = 4 * CHUNK) -> None:
        self.limit = limit  # a longer frame is a broken or hostile peer: ValueError
        self.head = b""
        self.header = None  # type: Optional[Tuple[bytes, int, int]]
        self.parts = []  # type: List[bytes]
        self.missing = 0

    def feed(self, data: bytes) -> List[Tuple[bytes, int, bytes]]:
        """The frames ``data`` completes, as (type, channel, payload)."""
        frames = []
        view = memoryview(data)
        while view:
            if self.header is None:
                take = HEADER.size - len(self.head)
                self.head += bytes(view[:take])
                view = view[take:]
                if len(self.head) < HEADER.size:
                    break
                self.header = HEADER.unpack(self.head)
                self.head, self.parts, self.missing = b"", [], self.header[2]
                if self.missing > self.limit:
                    raise ValueError(f"a lane frame longer than {self.limit} bytes")
            take = min(self.missing, len(view))
            if take:
                self.parts.append(bytes(view[:take]))
                view = view[take:]
                self.missing -= take
            if not self.missing:
                frames.append((self.header[0], self.header[1], b"".join(self.parts)))
                self.header = None
        return frames


# Compiled module code, kept across forked runs: Ansible ships its module_utils as source in a
# zip per run, and compiling them is most of a module's time under TCG. Keyed by the path in
# the zip and the source's hash, filled by each run's child (its new entries come back on a
# pipe). zipimport's _compile_source is Python 3.8+; older guests compile as before.
CODE_CACHE = {}  # type: Dict[Tuple[str, bytes], Any]
NEW_CODE = []  # type: List[Tuple[Tuple[str, bytes], Any]]


def install_code_cache() -> None:
    import hashlib
    import zipimport

    compile_source = getattr(zipimport, "_compile_source", None)
    if compile_source is None:
        return

    def cached(pathname: str, source: bytes) -> Any:
        key = (pathname.rsplit(".zip" + os.sep, 1)[-1], hashlib.sha1(source).digest())
        code = CODE_CACHE.get(key)
        if code is None:
            code = compile_source(pathname, source)
            NEW_CODE.append((key, code))
        return code

    zipimport._compile_source = cached  # type: ignore[attr-defined]


class Port:
    """The port's /dev node; whole frames written under a lock (threads share it)."""

    def __init__(self, name: str) -> None:
        self.fd = open_port(name)
        self.lock = threading.Lock()

    def send(self, kind: bytes, channel: int, payload: bytes = b"") -> None:
        with self.lock:
            for start in range(0, max(len(payload), 1), CHUNK):
                chunk = payload[start : start + CHUNK]
                frame = memoryview(HEADER.pack(kind, channel, len(chunk)) + chunk)
                while frame:
                    frame = frame[os.write(self.fd, frame) :]

    def end(self, channel: int, **outcome: Any) -> None:
        self.send(b"x", channel, json.dumps(outcome).encode())


class Request:
    """One request: its input arrives on ``inbox`` (None: the input's end, or cancelled)."""

    def __init__(
        self, port: Port, channel: int, spec: Dict[str, Any], running: Dict[int, "Request"]
    ) -> None:
        self.port = port
        self.running = running  # the lane's requests by channel: this one leaves it when done
        self.channel = channel
        self.spec = spec
        self.inbox = queue.Queue()  # type: queue.Queue[Optional[bytes]]
        self.cancelled = False
        self.pid = 0  # a process group to kill on cancel

    def chunks(self) -> Any:
        while True:
            data = self.inbox.get()
            if not data:
                return
            yield data

    def cancel(self) -> None:
        self.cancelled = True
        self.inbox.put(None)
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def run(self) -> None:
        try:
            outcome = getattr(self, "do_" + self.spec["op"])()  # type: Dict[str, Any]
        except OSError as exc:
            where = exc.filename or self.spec.get("path")
            outcome = {"error": f"{where}: {exc.strerror}", "errno": exc.errno}
        except Exception as exc:  # a bug here must not leave the host waiting
            outcome = {"error": f"lane: {exc!r}", "errno": 0}
        self.running.pop(self.channel, None)
        if not self.cancelled:
            self.port.end(self.channel, **outcome)

    def do_put(self) -> Dict[str, Any]:
        path = self.spec["path"]
        folder, name = os.path.split(path)
        temp = os.path.join(folder, f".{name}.qgactl-lane-{os.getpid()}-{self.channel}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for data in self.chunks():
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            if self.cancelled:
                raise OSError(0, "cancelled")
            os.fchmod(fd, self.spec["mode"])
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(temp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            os.unlink(temp)
            raise
        return {"status": 0}

    def do_code_out(self) -> Dict[str, Any]:
        """The compiled code kept so far (the master keeps it for the next lane)."""
        self.port.send(b"o", self.channel, marshal.dumps(list(CODE_CACHE.items())))
        return {"status": 0}

    def do_code_in(self) -> Dict[str, Any]:
        """Code a previous lane into this guest compiled (from its master)."""
        CODE_CACHE.update(marshal.loads(b"".join(self.chunks())))
        return {"status": 0}

    def do_get(self) -> Dict[str, Any]:
        with open(self.spec["path"], "rb") as f:
            while not self.cancelled:
                data = f.read(CHUNK)
                if not data:
                    break
                self.port.send(b"o", self.channel, data)
        return {"status": 0}

    def do_exec(self) -> Dict[str, Any]:
        argv = self.spec["argv"]
        env = dict(os.environ)
        env.update(self.spec.get("env") or {})
        if self.spec.get("python") and same_file(argv[0], sys.executable):
            return self.run_forked(b"".join(self.chunks()), env)
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            message = f"{argv[0]}: {exc.strerror}\n"
            self.port.send(b"e", self.channel, message.encode())
            return {"status": 127 if exc.errno == 2 else 126}
        self.pid = process.pid
        threading.Thread(target=self.feed, args=(process.stdin,), daemon=True).start()
        assert process.stdout is not None and process.stderr is not None
        return self.relay(process.stdout.fileno(), process.stderr.fileno(), process.wait)

    def feed(self, stdin: Any) -> None:
        try:
            for data in self.chunks():
                stdin.write(data)
                stdin.flush()
        except OSError:  # the command closed its stdin: the rest is not wanted
            pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def relay(self, out: int, err: int, wait: Any, code: int = -1) -> Dict[str, Any]:
        """stdout and stderr to the host until both close (and ``code``, a forked run's new
        compiled code, into the cache); then the command's status."""
        kinds = {out: b"o", err: b"e"}
        if code >= 0:
            kinds[code] = b"c"
        compiled = []  # type: List[bytes]
        while kinds:
            for fd in select.select(list(kinds), [], [])[0]:
                data = os.read(fd, READ)
                if not data:
                    del kinds[fd]
                elif kinds[fd] == b"c":
                    compiled.append(data)
                else:
                    self.port.send(kinds[fd], self.channel, data)
        if compiled:
            try:
                CODE_CACHE.update(marshal.loads(b"".join(compiled)))
            except (ValueError, EOFError, TypeError):
                pass  # a run that died while writing: its code is not needed
        status = wait()
        return {"status": status if status >= 0 else 128 - status}

    def run_forked(self, program: bytes, env: Dict[str, str]) -> Dict[str, Any]:
        """``python3 < program`` without starting a python3: a fork of this process runs it."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        code_r, code_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            run_program(program, env, out_w, err_w, code_w)
        for fd in (out_w, err_w, code_w):
            os.close(fd)
        self.pid = pid

        def wait() -> int:
            status = os.waitpid(pid, 0)[1]
            if os.WIFSIGNALED(status):
                return -os.WTERMSIG(status)
            return os.WEXITSTATUS(status)

        try:
            return self.relay(out_r, err_r, wait, code_r)
        finally:
            for fd in (out_r, err_r, code_r):
                os.close(fd)


def run_program(program: bytes, env: Dict[str, str], out: int, err: int, code_fd: int) -> None:
    """In the forked child: become a fresh ``python3`` reading PROGRAM from stdin."""
    status = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (out, 1), (err, 2), (code_fd, 3)):
            os.dup2(fd, target)
        for entry in os.listdir("/proc/self/fd"):  # the port, the other requests' pipes
            if int(entry) > 3:
                try:
                    os.close(int(entry))
                except OSError:
                    pass
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (they live as long as the process)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = [""]
        main = type(sys)("__main__")
        main.__dict__["__builtins__"] = __builtins__
        sys.modules["__main__"] = main
        code = compile(program, "<stdin>", "exec")
        exec(code, main.__dict__)
        status = 0
    except SystemExit as exc:
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        try:
            data = marshal.dumps(NEW_CODE)
            while data:
                data = data[os.write(3, data) :]
        except (OSError, ValueError):
            pass
        os._exit(status & 0xFF)


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def guest_env() -> None:
    """HOME and PATH as a login would have them: qemu-ga's environment may lack them."""
    entry = pwd.getpwuid(os.getuid())
    if os.environ.get("HOME", "/") == "/":
        os.environ["HOME"] = entry.pw_dir or "/"
    os.environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def heartbeat(port: Port) -> None:
    while True:
        time.sleep(HEARTBEAT)
        port.send(b"h", 0)


def serve(port: Port) -> None:
    """Frames from the host until its end closes; each request on a thread of its own."""
    requests = {}  # type: Dict[int, Request]
    reader = FrameReader()
    while True:
        data = os.read(port.fd, READ)
        if not data:  # the host end closed
            return
        for kind, channel, payload in reader.feed(data):
            request = requests.get(channel)
            if kind == b"q":
                request = Request(port, channel, json.loads(payload.decode()), requests)
                requests[channel] = request
                threading.Thread(target=request.run, daemon=True).start()
            elif kind == b"i" and request is not None:
                request.inbox.put(payload)
            elif kind == b"k" and request is not None:
                requests.pop(channel, None)
                request.cancel()


def main() -> None:
    guest_env()
    os.chdir("/")
    install_code_cache()
    for name in WARM:
        try:
            __import__(name)
        except ImportError:
            pass
    port = Port(sys.argv[1])
    import importlib.util

    magic = importlib.util.MAGIC_NUMBER.hex()  # which Python's compiled code it can use
    ready = {"python": sys.executable, "pid": os.getpid(), "magic": magic}
    port.send(b"r", 0, json.dumps(ready).encode())
    threading.Thread(target=heartbeat, args=(port,), daemon=True).start()
    try:
        serve(port)
    except OSError:  # the port went away under us (unplugged, host gone)
        pass
    finally:  # nothing this lane started outlives it
        kill_children()


def kill_children() -> None:
    """Every process group a request started (each runs in a session of its own)."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:  # its parent is this lane
            try:
                os.killpg(int(entry), signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main()
    os._exit(0)
