"""qgactl: a command-line tool for the QEMU guest agent."""

__version__ = "0.1.0"
