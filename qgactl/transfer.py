"""Copy files between the host and a guest through the agent, all or nothing.

- ``download``: guest file -> host file. The guest file is opened first (a missing source or a
  permission denied fails before anything exists on the host), the bytes go to a temporary
  file beside the destination, and a rename puts it in place only when all of it arrived.
- ``upload``: host stream -> guest file. A helper command makes a private temporary file
  beside the destination in the guest (mktemp: 0600, so nobody else can read or change it
  while it fills), the bytes are written there, and a second helper sets the mode (and the
  owner of the file it replaces) and renames it into place. On any failure, Ctrl-C included,
  the temporary file is removed.
Helpers run through guest_exec.run_captured (they need /bin/sh in the guest); each guest file
handle is closed on every path (guestfile.opened).

No click, no printing: progress goes to a callback with the bytes moved.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from qgactl import guest_exec, guestfile
from qgactl.errors import AgentCommandError, ExitCode, QgactlError

if TYPE_CHECKING:
    import tarfile

    from qgactl.agent import Agent
    from qgactl.guestfile import Progress, Sink

# $1 destination, $2 the source's name (for a destination that is a directory).
_PREPARE = r"""d=$1
[ -d "$d" ] && d=${d%/}/$2
t=$(mktemp "$(dirname -- "$d")/.qgactl.XXXXXX") || exit 1
printf '%s\n%s\n' "$d" "$t"
"""
# $1 temporary, $2 destination, $3 octal mode, $4 1 = that mode even over an existing file.
_FINISH = r"""t=$1 d=$2 m=$3
if [ "$4" = 0 ] && [ -e "$d" ]; then
    m=$(stat -c %a -- "$d") && chown -- "$(stat -c %u:%g -- "$d")" "$t" || exit 1
fi
chmod -- "$m" "$t" && mv -f -- "$t" "$d"
"""


# $1 destination, $2 the source directory's name: a private scratch directory beside it.
_PREPARE_TREE = r"""d=$1
[ -d "$d" ] && d=${d%/}/$2
[ -e "$d" ] && { echo "$d: already exists" >&2; exit 1; }
x=$(mktemp -d "$(dirname -- "$d")/.qgactl.XXXXXX") || exit 1
printf '%s\n%s\n' "$d" "$x"
"""
# $1 scratch directory holding .tar, $2 destination, $3 name, $4 1 = keep the archive's modes.
_FINISH_TREE = r"""x=$1
[ "$4" = 1 ] && p=-p || p=
cd "$x" && tar $p -xf .tar && rm -f .tar && chmod 755 "$x" && mv -- "$x/$3" "$2"
s=$?
rm -rf -- "$x"
exit $s
"""


class GuestFileError(QgactlError):
    """The guest refused (no such file, permission denied, disk full): its own words."""

    exit_code = ExitCode.AGENT_ERROR


class HostFileError(QgactlError):
    """A host file that can't be read or written."""

    exit_code = ExitCode.INTERNAL


def download(
    agent: Agent,
    guest_path: str,
    host_path: str | os.PathLike[str],
    *,
    keep_mode: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Copy ``guest_path`` to ``host_path`` (into it, if it is a directory); returns where."""
    target = Path(host_path)
    if target.is_dir():
        target = target / posixpath.basename(guest_path.rstrip("/"))
    mode = _guest_mode(agent, guest_path) if keep_mode else None
    try:
        # The guest file first: a missing source fails before anything exists on the host.
        with guestfile.opened(agent, guest_path, "r") as handle:  # noqa: SIM117 (3.9 syntax)
            with host_replacement(target, mode) as sink:
                guestfile.read_into(agent, handle, sink, progress)
    except AgentCommandError as exc:
        if "Is a directory" in exc.desc:
            exc.hint = "it is a directory: qgactl cp -r copies one"
        raise
    return target


def download_to(agent: Agent, guest_path: str, sink: Sink, progress: Progress | None = None) -> int:
    """Copy ``guest_path`` into an open stream (``cat``, ``cp vm:f -``); returns the bytes."""
    with guestfile.opened(agent, guest_path, "r") as handle:
        return guestfile.read_into(agent, handle, sink, progress)


def upload(
    agent: Agent,
    source: IO[bytes],
    guest_path: str,
    *,
    name: str,
    mode: int = 0o644,
    keep_mode: bool = False,
    progress: Progress | None = None,
    size: int | None = None,
) -> str:
    """Copy ``source`` to ``guest_path`` (into it, if it is a directory, as ``name``); returns
    the guest path written. A new file gets ``mode``; a file it replaces keeps its own mode
    and owner unless ``keep_mode``."""
    final, temporary = _helper(agent, "prepare", _PREPARE, guest_path, name).split("\n")
    try:
        with guestfile.opened(agent, temporary, "w") as handle:
            guestfile.write_from(agent, handle, source, progress, size)
        _helper(agent, "finish", _FINISH, temporary, final, f"{mode:o}", str(int(keep_mode)))
    except BaseException:
        with contextlib.suppress(QgactlError):
            guest_exec.run_captured(agent, ["rm", "-f", "--", temporary])
        raise
    return final


def download_tree(
    agent: Agent, guest_dir: str, host_path: str | os.PathLike[str], *, keep_mode: bool = False
) -> Path:
    """Copy the directory ``guest_dir`` to ``host_path`` (into it, if it exists) through tar in
    the guest; the tree appears whole or not at all. Only files, directories and symlinks
    that stay inside it are taken from the guest's archive."""
    import tarfile

    guest_dir = guest_dir.rstrip("/") or "/"
    name = posixpath.basename(guest_dir)
    target = Path(host_path)
    if target.is_dir():
        target = target / name
    if target.exists():
        raise HostFileError(f"{target}: already exists", hint="remove it, or name another DST")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        archive = Path(scratch, ".tar")
        with archive.open("wb") as sink:
            tar = ["tar", "-C", posixpath.dirname(guest_dir) or "/", "-cf", "-", name]
            _guest_tar(agent, tar, stdout=sink)
        with tarfile.open(archive) as tar_file:
            members = [m for m in tar_file.getmembers() if _safe_member(m, name)]
            for member in members:
                if not keep_mode:
                    member.mode &= ~_umask()
            tar_file.extractall(scratch, members=members)
        os.replace(Path(scratch, name), target)
    return target


def upload_tree(
    agent: Agent, host_dir: str | os.PathLike[str], guest_path: str, *, keep_mode: bool = False
) -> str:
    """Copy the host directory ``host_dir`` to ``guest_path`` (into it, if it exists) through
    tar in the guest: unpacked in a private scratch directory beside it, then renamed."""
    import tarfile

    source = Path(host_dir)
    name = source.resolve().name
    final, scratch = _helper(agent, "prepare", _PREPARE_TREE, guest_path, name).split("\n")
    try:
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar_file:
                tar_file.add(source, arcname=name)
            archive.seek(0)
            with guestfile.opened(agent, f"{scratch}/.tar", "w") as handle:
                guestfile.write_from(agent, handle, archive)
        argv = ["/bin/sh", "-c", _FINISH_TREE, "qgactl", scratch, final, name, str(int(keep_mode))]
        _guest_tar(agent, argv)
    except BaseException:
        with contextlib.suppress(QgactlError):
            guest_exec.run_captured(agent, ["rm", "-rf", "--", scratch])
        raise
    return final


def _guest_tar(agent: Agent, argv: list[str], stdout: Sink | None = None) -> None:
    """Run tar (or a script around it) in the guest; its failure in the guest's words."""
    import io

    errors = io.BytesIO()
    result = guest_exec.run(agent, argv, stdout=stdout or io.BytesIO(), stderr=errors)
    if result.status == guest_exec.NOT_FOUND and b"tar" in errors.getvalue():
        raise GuestFileError("the guest has no tar: cp -r needs tar in the guest")
    if result.status:
        words = errors.getvalue().decode(errors="replace").strip().splitlines()
        raise GuestFileError(f"tar in the guest failed: {words[-1] if words else result.status}")


def _safe_member(member: tarfile.TarInfo, top: str) -> bool:
    """A member of the guest's archive that lands inside ``top`` and is no device or link to
    elsewhere (an untrusted guest chooses the archive's contents)."""

    def inside(path: str) -> bool:
        return path == top or path.startswith(top + "/")

    path = posixpath.normpath(member.name)
    if member.name.startswith("/") or not inside(path):
        return False
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
        return not member.linkname.startswith("/") and inside(target)
    return member.isfile() or member.isdir()


def _guest_mode(agent: Agent, guest_path: str) -> int:
    return int(_helper(agent, "stat", 'exec stat -c %a -- "$1"', guest_path), 8)


def _helper(agent: Agent, what: str, script: str, *args: str) -> str:
    status, output = guest_exec.run_captured(agent, ["/bin/sh", "-c", script, "qgactl", *args])
    if status:
        raise GuestFileError(
            f"{args[0]}: {output or f'the guest {what} step failed (status {status})'}",
            hint="the guest's own words; a copy needs /bin/sh, mktemp, chmod and mv there",
        )
    return output


@contextlib.contextmanager
def host_replacement(target: Path, mode: int | None) -> Iterator[IO[bytes]]:
    """A temporary file beside ``target``, renamed over it on success, removed otherwise."""
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise HostFileError(f"{target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
            os.fchmod(sink.fileno(), _default_mode() if mode is None else mode)
        os.replace(name, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        if isinstance(exc, OSError):
            raise HostFileError(f"{target}: {exc.strerror or exc}") from None
        raise


def new_file_mode(source_mode: int, keep_mode: bool) -> int:
    """The mode a copy of a host file gets in the guest, as cp gives it: the source's, less
    the umask unless ``keep_mode`` (-p)."""
    return source_mode & (0o7777 if keep_mode else 0o777 & ~_umask())


def _default_mode() -> int:
    """What a new file gets from cp: 0666 less the umask (mkstemp made it 0600)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
