"""Write the shell completion scripts into a directory: ``make completions``.

A build step, like __main__: it imports the CLI and hands it to qgactl.completion_scripts,
which never imports the CLI itself (cli.py imports it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from qgactl.cli import cli
from qgactl.completion_scripts import write_scripts


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python lab/write_completions.py DIRECTORY")
    for path in write_scripts(Path(argv[0]), cli):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
