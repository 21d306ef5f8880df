"""bench: shell completion, whole process, as bash asks for it (the goal: <= 150 ms).

    .venv/bin/python bench/run.py completion

A lab guest is defined but not started (listing needs no CPU-hungry boot): `qgactl doctor <TAB>`
lists every domain, `qgactl ping <TAB>` the running ones, each against `virsh list` as the floor.
Subcommand completion needs no libvirt: its floor is a bare interpreter.
"""

from __future__ import annotations

import os

from bench.run import PYTHON, QGACTL, compare, timed

URI = "qemu:///system"


def complete(line: str) -> float:
    """One completion request, as completions/qgactl.bash sends it (the cursor at the end)."""
    env = dict(os.environ)
    env.update(
        COMP_WORDS=line,
        COMP_CWORD="1000" if line.endswith(" ") else "-1",
        _QGACTL_COMPLETE="bash_complete",
        LIBVIRT_DEFAULT_URI=URI,
    )
    return timed(QGACTL, env=env)


def run() -> None:
    from lab import lab

    lab.build_guest()
    lab.ensure_libvirtd()
    name = lab.test_domain_name("bench-completion")
    lab.start_domain(name, start=False)
    try:
        compare(
            "DOMAIN completion, every domain (qgactl doctor <TAB>) vs virsh list --all",
            (
                "virsh list --all --name",
                lambda: timed(["virsh", "-c", URI, "list", "--all", "--name"]),
            ),
            ("qgactl doctor <TAB>", lambda: complete("qgactl doctor ")),
        )
        compare(
            "DOMAIN completion, running domains (qgactl ping <TAB>) vs virsh list",
            ("virsh list --name", lambda: timed(["virsh", "-c", URI, "list", "--name"])),
            ("qgactl ping <TAB>", lambda: complete("qgactl ping ")),
        )
        compare(
            "subcommand completion (qgactl pi<TAB>) vs a bare interpreter",
            ("python3 -c pass", lambda: timed([PYTHON, "-c", "pass"])),
            ("qgactl pi<TAB>", lambda: complete("qgactl pi")),
        )
    finally:
        lab.destroy_and_undefine(name)
