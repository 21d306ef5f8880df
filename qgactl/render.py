"""Everything qgactl prints: results as tables or JSON, errors, warnings, progress, traces.

The only module that imports rich, and only when a table or a spinner is drawn, so that
``-o json`` and pipes never pay for it. Guest strings are untrusted: tables get them with rich
markup off and control characters escaped; JSON escapes C0/C1 controls and bidi overrides, so a
guest can't move the cursor, set the terminal title or inject a link through qgactl.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, Callable

from qgactl.errors import InvalidUsage, OutputClosed, QgactlError

if TYPE_CHECKING:
    from qgactl.wire import Reply

# Characters that are valid inside JSON strings but act on a terminal: C0 and C1 controls,
# DEL, line/paragraph separators and bidirectional overrides (the "Trojan Source" set), each
# mapped to its JSON escape. A str.translate table: a regex of it costs 0.4 ms to compile.
_UNSAFE_IN_JSON = {
    code: f"\\u{code:04x}"
    for code in (
        *range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E,
        0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
    )
}  # fmt: skip

# guest-set-user-password's argument: never in a --debug trace (or a log it is copied into).
_PASSWORD = r'("password"\s*:\s*)"(?:[^"\\]|\\.)*"'
MAX_SECRET = 4096  # a password or a crypt(3) hash from stdin fits many times over


def escape_control(text: str) -> str:
    """Make any string safe to show on a terminal: non-printables become visible escapes."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _visible(char) for char in text)


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_safe(text: str) -> str:
    """Escape terminal-active characters in JSON text; the JSON value stays the same."""
    return text.translate(_UNSAFE_IN_JSON)


def to_json_text(value: Any) -> str:
    return json_safe(json.dumps(value, indent=2, ensure_ascii=False))


def cell(value: Any) -> str:
    """One table cell: None as '-', booleans as yes/no, a tuple as one line per item,
    everything else escaped text."""
    if value is None or value == ():
        return "-"
    if isinstance(value, tuple):
        return "\n".join(cell(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape_control(str(value))


class Terminal:
    """Owns stdout (results only) and stderr (errors, warnings, progress, traces)."""

    def __init__(
        self,
        output: str = "auto",
        *,
        debug: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.debug = debug
        if output == "auto":
            output = "table" if isatty(self.stdout) else "json"
        self.output = output

    # -- results --------------------------------------------------------------------------

    def result(self, data: Any, table: Callable[[], Any], raw: Reply | None = None) -> None:
        """Print ``data`` (already JSON-able) as JSON, or the rich renderable ``table()``.

        ``-o raw`` prints ``raw`` (the agent's own reply) when the command made exactly one
        agent call, and the JSON otherwise.
        """
        if self.output == "raw" and raw is not None:
            self.reply_text(raw.text)
            return
        with self.writing():
            if self.output in ("json", "raw"):
                self.stdout.write(to_json_text(data) + "\n")
            else:
                self._console(self.stdout).print(table())
            self.stdout.flush()

    def reply_text(self, text: str, *, pretty: bool = False) -> None:
        """A reply as the agent sent it (``qgactl raw``), with only terminal hazards escaped."""
        if pretty:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        with self.writing():
            self.stdout.write(json_safe(text) + "\n")
            self.stdout.flush()

    def document(self, text: str) -> None:
        """A document from the host (domain XML, a diff, a shell script) byte for byte, UTF-8
        whatever the locale: not guest data, and escaping would break it."""
        with self.writing():
            self.stdout.flush()
            buffer = getattr(self.stdout, "buffer", None)
            if buffer is None:
                self.stdout.write(text)
            else:
                buffer.write(text.encode("utf-8"))
                buffer.flush()
            self.stdout.flush()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Writing to stdout: a failure becomes a QgactlError for main(), not an OSError
        (Click would turn a broken pipe into a bare exit 1)."""
        try:
            yield
        except BrokenPipeError:
            raise OutputClosed("the reader of stdout left") from None
        except OSError as exc:
            raise QgactlError(f"cannot write the output: {exc.strerror}") from None

    def guest_bytes(self, stream: str) -> GuestBytes:
        """Where a guest command's or file's bytes go ("stdout" or "stderr"): byte for byte
        into a pipe or a file; on a terminal with control characters escaped, so that the
        guest can't drive it (pipe or redirect for the exact bytes)."""
        text = self.stdout if stream == "stdout" else self.stderr
        return GuestBytes(text, self)

    # -- secrets ---------------------------------------------------------------------------

    def secret(self, prompt: str, stdin: IO[str] | None = None) -> str:
        """A password from a person (asked twice, not echoed) when stdin is a terminal, else
        exactly one line of stdin without its line ending. Never empty, never echoed."""
        stream = stdin or sys.stdin
        if isatty(stream):
            import click  # the prompt goes to stderr: stdout holds results only

            value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
            return value  # click asks again for an empty answer or a mismatch
        text = stream.read(MAX_SECRET + 2)
        line, newline, rest = text.partition("\n")
        line = line[:-1] if newline and line.endswith("\r") else line
        if rest or len(line) > MAX_SECRET:
            raise InvalidUsage(
                f"stdin must hold one line of at most {MAX_SECRET} characters",
                hint="e.g. printf '%s\\n' \"$PASSWORD\" | qgactl set-password DOMAIN USER",
            )
        if not line:
            raise InvalidUsage("no password on stdin (an empty one is refused)")
        return line

    # -- stderr ---------------------------------------------------------------------------

    @property
    def stderr_is_terminal(self) -> bool:
        """Progress (spinners, countdowns) is drawn only for a person watching."""
        return isatty(self.stderr)

    def error(self, exc: QgactlError) -> None:
        line = f"qgactl: {escape_control(exc.message)}"
        if exc.hint:
            line += f" (hint: {escape_control(exc.hint)})"
        self._err(line)

    def warn(self, message: str) -> None:
        self._err(f"qgactl: warning: {escape_control(message)}")

    def note(self, message: str) -> None:
        self._err(escape_control(message))

    def trace(self, direction: str, data: bytes) -> None:
        text = re.sub(_PASSWORD, r'\1"<redacted>"', data.decode("utf-8", "backslashreplace"))
        self._err(f"{direction} {escape_control(text)}")

    def _err(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr when it is a terminal; yields a function to update the text."""
        if not self.stderr_is_terminal:
            yield lambda text: None
            return
        with self._console(self.stderr).status(escape_control(message)) as spinner:
            yield lambda text: spinner.update(escape_control(text))

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Callable[[int, int | None], None] | None]:
        """A progress bar with rate and ETA on stderr when it is a terminal (else None); yields
        a function of (bytes just moved, the total when it becomes known)."""
        if not self.stderr_is_terminal:
            yield None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self._console(self.stderr), transient=True) as bar:
            task = bar.add_task(escape_control(description), total=None)

            def advance(count: int, total: int | None) -> None:
                if total is not None:
                    bar.update(task, total=total)
                bar.advance(task, count)

            yield advance

    def _console(self, file: IO[str]) -> Any:
        from rich.console import Console

        return Console(file=file, markup=False, emoji=False, highlight=False)


class GuestBytes:
    """A binary sink for guest data on one of the Terminal's streams (see guest_bytes)."""

    def __init__(self, text: IO[str], terminal: Terminal) -> None:
        self._text = text
        self._terminal = terminal
        self._buffer: IO[bytes] | None = None if isatty(text) else getattr(text, "buffer", None)
        self._decoder: Any = None
        if self._buffer is None:
            import codecs

            self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def write(self, data: bytes) -> int:
        with self._terminal.writing():
            if self._buffer is not None:
                self._text.flush()
                self._buffer.write(data)
                self._buffer.flush()
            else:
                text = self._decoder.decode(data)
                self._text.write("".join(_shown(line) for line in text.splitlines(True)))
                self._text.flush()
        return len(data)


def _shown(line: str) -> str:
    """One line of guest output for a terminal: its line ending and tabs kept."""
    body = line.rstrip("\r\n")
    return escape_control(body).replace("\\x09", "\t") + line[len(body) :]


def isatty(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", None) and stream.isatty())


# -- tables ---------------------------------------------------------------------------------
# Every cell goes through cell(): rich.text.Text never interprets markup, and the text is
# already escaped. A table never loses a value (a Windows volume name, an IPv6 address, a
# serial): it is drawn only when every column can be as wide as its longest word in the width
# rich is given (the terminal's, or $COLUMNS, else 80 in a pipe), so that a cell wraps only
# between words; otherwise each row becomes a block of "COLUMN: value" lines, where a value
# longer than a line folds onto the next. Rich left to itself would cut words with "…".


class Fitted:
    """A table whose cells wrap only between words, or its rows as blocks of "label: value"
    lines when the terminal is too narrow for that."""

    def __init__(
        self,
        labels: Sequence[str],
        rows: Sequence[Sequence[str]],
        title: str,
        *,
        header: bool,
    ) -> None:
        self.labels = labels
        self.rows = rows  # cells already through cell()
        self.title = title
        self.header = header

    def table(self, widths: Sequence[int | None] = ()) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=self.title or None, title_justify="left", show_header=self.header, box=_box()
        )
        for index, label in enumerate(self.labels):
            bold = not self.header and index == 0  # a fields table's names
            width = widths[index] if widths else None
            table.add_column(label, style="bold" if bold else None, overflow="fold", width=width)
        for row in self.rows:
            table.add_row(*(Text(value) for value in row))
        return table

    def extents(self) -> tuple[list[int], list[int]]:
        """Each column's longest line and longest word, its heading included."""
        from rich.cells import cell_len

        longest, words = [], []
        for index, label in enumerate(self.labels):
            lines = [
                line
                for text in (label, *(row[index] for row in self.rows))
                for line in text.split("\n")
            ]
            longest.append(max(cell_len(line) for line in lines))
            words.append(
                max((cell_len(word) for line in lines for word in line.split()), default=0)
            )
        return longest, words

    def widths(self, room: int) -> list[int] | None:
        """Column widths that fit ``room`` (the width less rules and padding): the widest
        columns narrowed first, as rich does, but none below its longest word, so that short
        values ("15.0 MiB") stay on one line; None when even the longest words don't fit."""
        longest, words = self.extents()
        if sum(words) > room:
            return None
        for level in range(max(longest), -1, -1):  # at 0 every column is its longest word
            widths = [min(most, max(least, level)) for most, least in zip(longest, words)]
            if sum(widths) <= room:
                return widths
        raise AssertionError("unreachable")

    def blocks(self) -> Any:
        from rich.text import Text

        text = Text(overflow="fold")
        if self.title:
            text.append(self.title + "\n\n")
        # one record per row of a table; a fields table is one record already
        records = [zip(self.labels, row) for row in self.rows] if self.header else [self.rows]
        for number, record in enumerate(records):
            if number:
                text.append("\n")  # a blank line between records
            for label, value in record:
                indent = "\n" + " " * (len(label) + 2)  # a multi-line value stays in line
                text.append(f"{label}:", style="bold")
                text.append(f" {value.replace(chr(10), indent)}\n")
        text.rstrip()
        return text

    def __rich_console__(self, console: Any, options: Any) -> Any:
        table = self.table()
        natural = table.__rich_measure__(console, options.update_width(1 << 20)).maximum
        if natural <= options.max_width:
            yield table
            return
        borders = natural - sum(self.extents()[0])  # padding and rules
        widths = self.widths(options.max_width - borders)
        yield self.blocks() if widths is None else self.table(widths)

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        return self.table().__rich_measure__(console, options)


def rows_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> Any:
    cells = [[cell(value) for value in row] for row in rows]
    return Fitted(columns, cells, title, header=True)


def fields_table(pairs: Sequence[tuple[str, Any]], title: str = "") -> Any:
    """A two-column table of field names and values, for one object."""
    return Fitted(["", ""], [[name, cell(value)] for name, value in pairs], title, header=False)


def sections(parts: Sequence[tuple[str, Any]]) -> Any:
    """Renderables one after another, each under its heading (guestinfo's view)."""
    from rich.console import Group
    from rich.text import Text

    items: list[Any] = []
    for heading, renderable in parts:
        items += [Text(escape_control(heading), style="bold underline"), renderable]
    return Group(*items)


def failure(message: str) -> Any:
    """A target's error in place of its table (fan-out blocks)."""
    from rich.text import Text

    return Text(f"  failed: {escape_control(message)}\n")


def _box() -> Any:
    from rich import box

    return box.SIMPLE_HEAD
