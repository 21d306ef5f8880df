"""Entry point for ``python -m qgactl``."""

from qgactl.cli import main

main()
