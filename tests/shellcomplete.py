"""Ask qgactl for completions the way the bash script does (Click's bash_complete protocol)."""

from __future__ import annotations


def bash_complete(qgactl, line, env=None):
    """The (type, value) pairs qgactl answers for ``line`` with the cursor at its end."""
    run = qgactl(
        env={
            "COMP_WORDS": line,
            "COMP_CWORD": "1000" if line.endswith(" ") else "-1",
            "_QGACTL_COMPLETE": "bash_complete",
            **(env or {}),
        }
    )
    assert run.code == 0 and run.stderr == "", run
    return [tuple(item.split(",", 1)) for item in run.stdout.splitlines() if item]
