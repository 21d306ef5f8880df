"""An Ansible callback for qgactl's tests and bench: every task result of every host as one
JSON line in the file $QGACTL_ANSIBLE_RECORD (status, seconds, rc, stdout, stderr, msg).

ansible-core has no JSON or timing callback of its own (those are in ansible.posix).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: qgactl_record
type: aggregate
short_description: task results and times as JSON lines (qgactl's tests and bench)
description: Writes one JSON line per task result to the file named by $QGACTL_ANSIBLE_RECORD.
requirements: [enabled in ANSIBLE_CALLBACKS_ENABLED]
"""

KEPT = ("rc", "stdout", "stderr", "msg", "changed", "skipped", "unreachable", "checksum")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "qgactl_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[tuple[str, str], float] = {}
        self._path = os.environ.get("QGACTL_ANSIBLE_RECORD")

    def v2_runner_on_start(self, host, task):  # type: ignore[no-untyped-def]
        self._started[(host.get_name(), task._uuid)] = time.monotonic()

    def _write(self, result, status: str) -> None:  # type: ignore[no-untyped-def]
        host, task = result._host.get_name(), result._task
        started = self._started.pop((host, task._uuid), None)
        seconds = None if started is None else round(time.monotonic() - started, 3)
        data = result._result
        line = {"host": host, "task": task.get_name(), "status": status, "seconds": seconds}
        line.update({key: _plain(data[key]) for key in KEPT if key in data})
        if self._path:
            with open(self._path, "a") as record:
                record.write(json.dumps(line) + "\n")

    def v2_runner_on_ok(self, result):  # type: ignore[no-untyped-def]
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):  # type: ignore[no-untyped-def]
        self._write(result, "failed")

    def v2_runner_on_unreachable(self, result):  # type: ignore[no-untyped-def]
        self._write(result, "unreachable")

    def v2_runner_on_skipped(self, result):  # type: ignore[no-untyped-def]
        self._write(result, "skipped")


def _plain(value):  # type: ignore[no-untyped-def]
    """Ansible's tagged strings and the like as plain JSON values."""
    return json.loads(json.dumps(value, default=str))
