"""`qgactl completion SHELL`: print the shell completion script (see completion_scripts.py)."""

from __future__ import annotations

import click

from qgactl.app import App, pass_app
from qgactl.completion_scripts import FILE_NAMES, script


@click.command()
@click.argument("shell", type=click.Choice(sorted(FILE_NAMES)))
@pass_app
def completion(app: App, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
      bash  eval "$(qgactl completion bash)"          in ~/.bashrc
      zsh   eval "$(qgactl completion zsh)"           in ~/.zshrc, after compinit
      fish  qgactl completion fish | source           in ~/.config/fish/config.fish

    Or install the files once for every user: `make install-completions` puts them where each
    shell looks (bash-completion, zsh's vendor-completions, fish's vendor_completions.d).
    """
    root = click.get_current_context().find_root().command
    app.terminal.document(script(shell, root))
