"""Guest accounts: set-password and ssh-keys (guest-set-user-password, guest-ssh-*)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from qgactl import completion, tables
from qgactl.app import App, pass_app
from qgactl.errors import InvalidUsage, QgactlError
from qgactl.pubkeys import MAX_KEY_FILE, parse_public_keys

if TYPE_CHECKING:
    from qgactl.api import Guest


@click.command("set-password")
@click.argument(
    "words", nargs=-1, metavar="[DOMAIN] USER", shell_complete=completion.complete_leading_domain
)
@click.option("--crypted", is_flag=True, help="The input is already a crypt(3) hash.")
@pass_app
def set_password(app: App, words: tuple[str, ...], crypted: bool) -> None:
    """Set USER's password in the guest.

    On a terminal the password is asked twice, hidden; otherwise it is one line of stdin
    (`printf '%s\\n' "$PW" | qgactl set-password vm1 root`). It never goes on the command line
    (visible in `ps`), and a --debug trace shows it redacted.
    """
    domain, (user,) = app.split_domain(words, "USER")
    what = "crypted password (hash)" if crypted else "new password"
    secret = app.terminal.secret(f"{what} for {user}")
    guest = app.guest(domain)
    guest.require("guest-set-user-password")
    guest.set_password(user, secret, crypted=crypted)
    app.terminal.note(f"{guest.name}: password of {user} set")


@click.command("ssh-keys")
@click.argument(
    "words", nargs=-1, metavar="[DOMAIN] USER", shell_complete=completion.complete_leading_domain
)
@click.option("--add", "add", metavar="FILE", help="Add the public keys in FILE (- for stdin).")
@click.option("--remove", metavar="FILE", help="Remove the public keys in FILE.")
@click.option("--reset", metavar="FILE", help="Make the keys in FILE the only ones.")
@pass_app
def ssh_keys(
    app: App, words: tuple[str, ...], add: str | None, remove: str | None, reset: str | None
) -> None:
    """List, add or remove USER's authorized SSH keys in the guest.

    Lists ~/.ssh/authorized_keys, after adding, removing or resetting keys from a file of
    OpenSSH public keys."""
    domain, (user,) = app.split_domain(words, "USER")
    options = {"add": add, "remove": remove, "reset": reset}
    changes = [(option, file) for option, file in options.items() if file is not None]
    if len(changes) > 1:
        raise InvalidUsage("give one of --add, --remove and --reset")
    guest = app.guest(domain)
    if changes:
        option, file = changes[0]
        _change_keys(guest, user, option, parse_public_keys(_read_key_file(file), _source(file)))
    else:
        guest.require("guest-ssh-get-authorized-keys")
    found = guest.ssh_keys(user)
    app.terminal.result(found.to_json(), lambda: tables.ssh_keys_table(found))


def _change_keys(guest: Guest, user: str, option: str, keys: list[str]) -> None:
    """--add, --remove or --reset; the listing after it must work too (no half-done job)."""
    listing = "guest-ssh-get-authorized-keys"
    if option == "remove":
        guest.require("guest-ssh-remove-authorized-keys", listing)
        guest.remove_ssh_keys(user, keys)
    else:
        guest.require("guest-ssh-add-authorized-keys", listing)
        guest.add_ssh_keys(user, keys, reset=option == "reset")


def _source(file: str) -> str:
    return "stdin" if file == "-" else file


def _read_key_file(file: str) -> str:
    try:
        with click.open_file(file, encoding="utf-8", errors="strict") as stream:
            text: str = stream.read(MAX_KEY_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise QgactlError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(text) > MAX_KEY_FILE:
        raise InvalidUsage(f"{file}: more than {MAX_KEY_FILE} bytes of keys")
    return text
