"""Values a user types, turned into what the agent takes: a time, a list of CPUs.

Pure functions (no I/O, no click): bad input is an InvalidUsage that says what is accepted.
"""

from __future__ import annotations

import re

from qgactl.errors import InvalidUsage

MAX_CPUS = 8192  # Linux's NR_CPUS upper bound: "0-99999999" is a typo, not a guest

_SECONDS = re.compile(r"\d+(\.\d{1,9})?")
_CPU_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_time(text: str) -> int:
    """ISO 8601 with a zone ("2026-12-01T10:15:00Z", "...+05:30") or seconds since the epoch
    ("1796113366.25") -> nanoseconds since the epoch, as guest-set-time takes it."""
    stripped = text.strip()
    if _SECONDS.fullmatch(stripped):
        whole, _, fraction = stripped.partition(".")
        return int(whole) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)
    import datetime  # only here: it costs start-up time

    iso = stripped[:-1] + "+00:00" if stripped[-1:] in ("Z", "z") else stripped
    try:
        moment = datetime.datetime.fromisoformat(iso)  # Python 3.9: no "Z" of its own
    except ValueError:
        raise InvalidUsage(
            f"not a time: {text!r}",
            hint="give ISO 8601 with a zone (2026-12-01T10:15:00Z, 2026-12-01 15:45+05:30) "
            "or seconds since the epoch",
        ) from None
    if moment.tzinfo is None:
        raise InvalidUsage(
            f"{text!r} has no zone: whose 10 o'clock?",
            hint="add Z for UTC or an offset such as +01:00",
        )
    since = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    if since.days < 0:
        raise InvalidUsage(f"{text!r} is before 1970", hint="the agent takes times after 1970")
    seconds = since.days * 86400 + since.seconds
    return seconds * 1_000_000_000 + since.microseconds * 1000


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """ "1", "1-3", "0,2,5-6" (as virsh guestvcpus takes them) -> sorted logical CPU ids."""
    cpus: set[int] = set()
    for item in text.split(","):
        match = _CPU_RANGE.fullmatch(item.strip())
        first, last = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if not match or last < first or last >= MAX_CPUS:
            raise InvalidUsage(
                f"not a CPU list: {text!r}", hint="e.g. 1, 1-3 or 0,2,5-6 (logical CPU ids)"
            )
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))
