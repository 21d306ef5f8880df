"""Guest files through the agent: a handle that is always closed, read and written in chunks
that fit the transport.

guest-file-read and guest-file-write move base64 in one JSON message each, so the chunk size
is bounded by what the transport carries (PROTOCOL.md, "Limits", measured on libvirt 9.0):
- libvirt: a reply over ~4 MiB of base64 fails ("Unable to encode message payload") and one
  over 10 MiB breaks the domain's agent inside libvirtd; a request over ~256 KiB of base64
  never completes.
- a direct socket: qgactl's own 64 MiB reply bound; 4 MiB writes measured.
The sizes below are the fastest measured within those bounds (bench/run.py transfer).

No printing, no click: progress goes to a callback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Protocol

from qgactl.errors import QgactlError

if TYPE_CHECKING:
    from qgactl.agent import Agent

# (read, write) chunk sizes in raw bytes; base64 adds a third on the wire.
CHUNKS = {
    "libvirt": (1024 * 1024, 128 * 1024),
    "socket": (8 * 1024 * 1024, 2 * 1024 * 1024),
}


class Progress(Protocol):
    """Told (bytes just moved, None) after each chunk, and (0, the total) before the first.
    ``sized``: whether it wants the total of a guest file (a bar with an ETA), which costs
    two more agent calls; without it the total is None."""

    sized: bool

    def __call__(self, count: int, total: int | None, /) -> None: ...


class Sink(Protocol):
    """Where bytes from the guest go: a binary file, a BytesIO, the Terminal's guest_bytes."""

    def write(self, data: bytes, /) -> int: ...


def chunk_sizes(agent: Agent) -> tuple[int, int]:
    return CHUNKS.get(agent.transport.kind, CHUNKS["libvirt"])


@contextlib.contextmanager
def opened(agent: Agent, path: str, mode: str) -> Iterator[int]:
    """A guest file handle, closed on every way out (an agent holds at most a few hundred,
    and a leaked one keeps the file open in the guest until qemu-ga restarts)."""
    handle = agent.file_open(path, mode)
    try:
        yield handle
    finally:
        close_quietly(agent, handle)


def close_quietly(agent: Agent, handle: int) -> None:
    """Close a handle during cleanup: a failure here must not hide the error being raised."""
    with contextlib.suppress(QgactlError):
        agent.file_close(handle)


def read_into(agent: Agent, handle: int, sink: Sink, progress: Progress | None = None) -> int:
    """Copy from the handle's position to its end into ``sink``; returns the bytes copied."""
    size, _ = chunk_sizes(agent)
    total = 0
    if progress:
        progress(0, agent.file_size(handle) if progress.sized else None)
    while True:
        chunk = agent.file_read(handle, size)
        if chunk.data:
            sink.write(chunk.data)
            total += len(chunk.data)
            if progress:
                progress(len(chunk.data), None)
        if chunk.eof or not chunk.data:
            return total


def write_from(
    agent: Agent,
    handle: int,
    source: IO[bytes],
    progress: Progress | None = None,
    total_size: int | None = None,
) -> int:
    """Copy ``source`` to its end into the handle; returns the bytes copied."""
    _, size = chunk_sizes(agent)
    total = 0
    if progress:
        progress(0, total_size)
    while True:
        data = source.read(size)
        if not data:
            return total
        agent.file_write(handle, data)
        total += len(data)
        if progress:
            progress(len(data), None)
