"""Shell completion callbacks: domains, agent commands and mountpoints, each with a deadline.

Click runs these when the shell asks (``_QGACTL_COMPLETE=bash_complete`` and friends; the
scripts in completions/ come from qgactl.completion_scripts). Completion runs on every <TAB>, so
it must never print an error or hang: each lookup runs in a daemon thread with a deadline of
``LOOKUP_DEADLINE`` seconds, and whatever fails or is late completes to the fallback (nothing,
or the built-in list of agent commands).

The global options given earlier on the line (``--connect``, ``--socket``, ``--transport``) are
honoured. Importing this module costs nothing (stdlib only): command modules may reference the
callbacks directly, e.g. ``shell_complete=completion.complete_mountpoints``. Not here: the
scripts themselves (completion_scripts.py).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from qgactl.agent import Agent

# How a shell asks: Click's `_{PROG}_COMPLETE` variable (bash_complete, zsh_source...).
COMPLETE_VAR = "_QGACTL_COMPLETE"

LOOKUP_DEADLINE = 1.0
# The agent call gets a little less, so that a late answer is cut by the agent's own timeout.
AGENT_TIMEOUT = 0.8

# The commands of qemu-ga 7.2, for `qgactl raw` when the guest can't be asked. Generated from
# /usr/share/doc/qemu-guest-agent/qapi-schema.json.gz (package qemu-guest-agent):
#   zcat qapi-schema.json.gz | grep -o "'command': '[a-z-]*'" | cut -d"'" -f4 | sort
AGENT_COMMANDS = (
    "guest-exec",
    "guest-exec-status",
    "guest-file-close",
    "guest-file-flush",
    "guest-file-open",
    "guest-file-read",
    "guest-file-seek",
    "guest-file-write",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-get-cpustats",
    "guest-get-devices",
    "guest-get-disks",
    "guest-get-diskstats",
    "guest-get-fsinfo",
    "guest-get-host-name",
    "guest-get-memory-block-info",
    "guest-get-memory-blocks",
    "guest-get-osinfo",
    "guest-get-time",
    "guest-get-timezone",
    "guest-get-users",
    "guest-get-vcpus",
    "guest-info",
    "guest-network-get-interfaces",
    "guest-ping",
    "guest-set-memory-blocks",
    "guest-set-time",
    "guest-set-user-password",
    "guest-set-vcpus",
    "guest-shutdown",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-suspend-disk",
    "guest-suspend-hybrid",
    "guest-suspend-ram",
    "guest-sync",
    "guest-sync-delimited",
)

T = TypeVar("T")


def within_deadline(
    lookup: Callable[[], list[T]], fallback: list[T], seconds: float = LOOKUP_DEADLINE
) -> list[T]:
    """``lookup()`` if it returns within ``seconds`` without raising, else ``fallback``."""
    found: list[list[T]] = []

    def run() -> None:
        try:
            found.append(lookup())
        except Exception:  # completion stays silent whatever libvirt or the agent do
            pass

    worker = threading.Thread(target=run, daemon=True)  # a late one dies with the process
    worker.start()
    worker.join(seconds)
    return found[0] if found else fallback


def _root_params(ctx: Any) -> dict[str, Any]:
    return dict(ctx.find_root().params or {})


def _first(values: Any) -> str | None:
    """The first of a repeated option (-c URI -c URI2): completion asks one host."""
    if isinstance(values, (tuple, list)):
        return values[0] if values else None
    return values  # type: ignore[no-any-return]


def _domain_names(ctx: Any, incomplete: str, *, running: bool) -> list[str]:
    if _root_params(ctx).get("socket"):
        return []  # --socket names the agent: commands take no DOMAIN

    def lookup() -> list[str]:
        from qgactl.discover import Libvirt

        flags = 1 if running else 0  # VIR_CONNECT_LIST_DOMAINS_ACTIVE
        host = Libvirt(_first(_root_params(ctx).get("connect")))
        try:
            if host.rpc is not None:  # root on the local system: no libvirt-python to import
                return [domain.name() for domain in host.rpc.listAllDomains(flags)]
        finally:
            host.close()
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        # Read-only: enough to list, and allowed for users who may not manage domains.
        conn = libvirt.openReadOnly(host.uri)
        try:
            return [domain.name() for domain in conn.listAllDomains(flags)]
        finally:
            conn.close()

    names = within_deadline(lookup, [])
    return sorted(name for name in names if name.startswith(incomplete))


def complete_running_domains(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """Running domains: for commands that talk to the agent."""
    return _domain_names(ctx, incomplete, running=True)


def complete_all_domains(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """Every defined domain: for doctor, add-channel and other commands that work on XML."""
    return _domain_names(ctx, incomplete, running=False)


def _ask_agent(ctx: Any, domain: str | None, ask: Callable[[Agent], list[str]]) -> list[str]:
    """Open DOMAIN's agent (or --socket's) the way the command itself would, and ``ask`` it."""
    from qgactl.connector import Connector

    params = _root_params(ctx)
    connector = Connector(timeout=AGENT_TIMEOUT, transport=params.get("transport") or "auto")
    socket = _first(params.get("socket"))
    agent = connector.open(domain, socket=socket, uri=_first(params.get("connect")))
    try:
        return ask(agent)
    finally:
        agent.close()


def _enabled_commands(agent: Agent) -> list[str]:
    from qgactl.transport import SYNC_COMMANDS

    info = agent.info()
    refused = SYNC_COMMANDS if agent.transport.kind == "libvirt" else frozenset()
    return sorted(info.enabled - refused)


def complete_raw_words(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``qgactl raw [DOMAIN] REQUEST [ARGUMENTS]``: the domain, then the agent's commands.

    The commands come from the guest's guest-info (enabled ones only) when it answers within
    the deadline, else from the built-in qemu-ga 7.2 list. A JSON REQUEST is not completed.
    """
    words = list(ctx.params.get(param.name) or ())
    has_socket = bool(_root_params(ctx).get("socket"))
    if not has_socket and not words:
        return complete_running_domains(ctx, param, incomplete)
    if len(words) != (0 if has_socket else 1) or incomplete.startswith("{"):
        return []
    domain = None if has_socket else words[0]
    commands = within_deadline(
        lambda: _ask_agent(ctx, domain, _enabled_commands), list(AGENT_COMMANDS)
    )
    return sorted(name for name in commands if name.startswith(incomplete))


def complete_leading_domain(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``[DOMAIN] WORDS...`` (exec's CMD, set-password's USER): the domain; the rest is the
    guest's and is not completed."""
    if ctx.params.get(param.name) or _root_params(ctx).get("socket"):
        return []
    return complete_running_domains(ctx, param, incomplete)


complete_exec_words = complete_leading_domain


def complete_copy_paths(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``qgactl cp SRC DST``: ``DOMAIN:`` for the guest side; host paths are the shell's."""
    if ":" in incomplete or "/" in incomplete or _root_params(ctx).get("socket"):
        return []
    return [f"{name}:" for name in complete_running_domains(ctx, param, incomplete)]


def _mountpoints(agent: Agent) -> list[str]:
    return [filesystem.mountpoint for filesystem in agent.fsinfo() if filesystem.mountpoint]


def complete_mountpoints(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``--mountpoint``: the guest's mounted filesystems (guest-get-fsinfo), else nothing.

    The domain is the command's ``domain`` parameter (a name, or the first of several), so it
    must come before the option on the line: ``qgactl fsfreeze vm1 --mountpoint <TAB>``.
    """
    domain = ctx.params.get("domain")
    if isinstance(domain, (tuple, list)):
        domain = domain[0] if domain else None
    if not domain and not _root_params(ctx).get("socket"):
        return []
    mountpoints = within_deadline(lambda: _ask_agent(ctx, domain, _mountpoints), [])
    return sorted({path for path in mountpoints if path.startswith(incomplete)})
