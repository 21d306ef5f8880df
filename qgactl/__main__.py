"""The entry point: the ``qgactl`` console script and ``python -m qgactl``.

Start-up first, because every command pays for it: importing Click, the command line and
then libvirt creates some 100,000 objects that live until the process exits. Python's cyclic
garbage collector would walk them over and over while they are created and free nothing
(~3 ms of a 60 ms ping, measured with gc.callbacks); so it is off while the command line is
imported, and what exists then is frozen out of later collections.
"""

import gc


def main() -> None:
    gc.disable()
    from qgactl import cli

    gc.freeze()
    gc.enable()
    cli.main()


if __name__ == "__main__":
    main()
