# qgactl.guest.agent: Ansible's way into a libvirt/QEMU guest through its QEMU guest agent.
# MIT License (see qgactl's pyproject.toml)
"""The connection plugin: thin over qgactl's Python API (qgactl.connect, Guest.lane,
Guest.exec, Guest.write_file, Guest.copy_out); everything about the guest is qgactl's."""

from __future__ import annotations

DOCUMENTATION = r"""
name: agent
short_description: Run tasks in libvirt/QEMU guests through the QEMU guest agent (qgactl)
description:
  - Runs commands and moves files in a guest through its QEMU guest agent, with no network
    in the guest, through libvirt (local or remote hosts) or straight to an agent socket.
  - A drop-in for C(community.libvirt.libvirt_qemu) (the same variables work) that works with
    Ansible's defaults (remote tmp under C(~), as the guest-exec process gets C(HOME) from the
    user's passwd entry), pipelines modules by default (stdin of any size, spooled through a
    guest file), moves files byte-exact and atomically at any size, and bounds every agent call
    by C(timeout) (not a module's own run time).
  - An agent that is down, hung or stops mid-play makes the host UNREACHABLE within C(timeout).
  - On a libvirt domain whose guest has python3, tasks go through a qgactl lane (like ssh's
    ControlPersist), a master process on the controller shared by every task and playbook,
    with a virtio-serial port of its own into the guest and a warm python3 there that runs
    each pipelined module in a fork (no interpreter start per module) and moves files without
    base64. It ends C(persist) seconds after its last task, unplugging its port; nothing of it
    stays in the guest. Without python3 (or with C(persist) 0), the agent does everything.
author: qgactl authors
requirements:
  - qgactl (in the Python that runs Ansible on the controller)
options:
  remote_addr:
    description: The libvirt domain (name, UUID or ID).
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  virt_uri:
    description:
      - The libvirt URI of the domain's host, e.g. C(qemu+ssh://kvm3/system).
      - Default C($LIBVIRT_DEFAULT_URI), else C(qemu:///system).
    type: string
    vars:
      - name: ansible_libvirt_uri
  socket:
    description:
      - An agent socket to talk to instead of a libvirt domain (bare QEMU's
        C(-chardev socket,path=...), or a domain's dedicated channel).
    type: string
    vars:
      - name: ansible_qgactl_socket
  transport:
    description:
      - How to reach a domain's agent, as qgactl's C(--transport) (auto tries libvirt, then
        the domain's dedicated channel socket).
    type: string
    default: auto
    choices: [auto, libvirt, socket]
    vars:
      - name: ansible_qgactl_transport
  timeout:
    description:
      - Seconds for reaching the agent and for each agent call (not for a module's own run).
    type: integer
    default: 10
    ini:
      - section: defaults
        key: timeout
    env:
      - name: ANSIBLE_TIMEOUT
    vars:
      - name: ansible_timeout
  persist:
    description:
      - Seconds a lane stays after its last task (0 = no lane, the agent does everything).
    type: float
    default: 60
    env:
      - name: ANSIBLE_QGACTL_PERSIST
    vars:
      - name: ansible_qgactl_persist
  pipelining:
    description:
      - Send modules on the guest command's stdin instead of copying them first (on by
        default, one guest command per module instead of several).
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
    vars:
      - name: ansible_pipelining
"""

import os
import re
import shlex

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.utils.display import Display

from ansible.plugins.connection import ConnectionBase

try:
    import qgactl
except ImportError as exc:  # reported when a task uses the plugin, not when Ansible loads it
    QGACTL_IMPORT_ERROR: ImportError | None = exc
else:
    QGACTL_IMPORT_ERROR = None

display = Display()

# guest-exec runs with qemu-ga's environment, which has no HOME under systemd, so Ansible's
# default remote tmp (~/.ansible/tmp) would be taken literally (community.libvirt issue #161).
# The shell parses a script command by command: HOME is set before the command's ~ expands.
HOME_FROM_PASSWD = r"""if [ -z "${HOME:-}" ] || [ "$HOME" = / ]; then
    u=$(id -u 2>/dev/null || echo 0)
    HOME=$(sed -n "s/^[^:]*:[^:]*:$u:[^:]*:[^:]*:\([^:]*\):.*/\1/p" /etc/passwd 2>/dev/null |
        head -n 1)
    export HOME=${HOME:-/}
fi
"""
# Ansible's pipelined module: /bin/sh -c '[VAR=VALUE ...] /usr/bin/python3 && sleep 0'.
PYTHON = re.compile(r"(/\S*/)?python[0-9.]*")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
SHELL_SYNTAX = re.compile(r"[$`\\;|&<>(){}*?~'\"\s]")


def pipelined_python(cmd):
    """(interpreter, env) when ``cmd`` only runs a python on its stdin, else None."""
    try:
        outer = shlex.split(cmd)
        if outer[:2] != ["/bin/sh", "-c"] or len(outer) != 3:
            return None
        words = shlex.split(outer[2])
    except ValueError:
        return None
    if words[-3:] == ["&&", "sleep", "0"]:
        words = words[:-3]
    if not words or not PYTHON.fullmatch(words[-1]) or SHELL_SYNTAX.search(words[-1]):
        return None
    env = {}
    for word in words[:-1]:
        name, _, value = word.partition("=")
        if not ASSIGNMENT.fullmatch(word) or SHELL_SYNTAX.search(value):
            return None
        env[name] = value
    return words[-1], env


class Connection(ConnectionBase):
    """Commands through guest-exec, files through guest-file-*: qgactl does both."""

    transport = "qgactl.guest.agent"
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._guest = None
        self._lane = None

    def _connect(self):
        if self._connected:
            return self
        if QGACTL_IMPORT_ERROR is not None:
            raise AnsibleError(
                "the qgactl.guest.agent connection needs the qgactl package in the Python that "
                f"runs Ansible ({QGACTL_IMPORT_ERROR}); install qgactl there"
            )
        socket = self.get_option("socket")
        domain = None if socket else self.get_option("remote_addr")
        where = socket or f"{domain} on {self.get_option('virt_uri') or 'the default host'}"
        display.vvv(f"QGACTL CONNECT {where}", host=self._play_context.remote_addr)
        try:
            self._guest = qgactl.connect(
                domain,
                uri=self.get_option("virt_uri"),
                socket=socket,
                timeout=float(self.get_option("timeout")),
                transport=self.get_option("transport"),
            )
            self._lane = self._open_lane(socket)
            if self._lane is None:
                self._guest.ping()
        except qgactl.QgactlError as exc:
            raise _failure(exc) from None
        self._connected = True
        return self

    def _open_lane(self, socket):
        """The guest's lane, or None: the agent does everything (a socket, persist 0, a guest
        without python3, or a lane that can't start: then the agent says why or works)."""
        persist = float(self.get_option("persist"))
        if socket or persist <= 0 or self.get_option("transport") == "socket":
            return None
        try:
            return self._guest.lane(persist=persist)
        except qgactl.QgactlError as exc:
            display.vvv(f"QGACTL NO LANE: {exc.message}", host=self._play_context.remote_addr)
            return None

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``cmd`` (a shell command line from Ansible) through the guest's /bin/sh; the
        module's stdin (pipelining) goes through a guest spool file, any size."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"QGACTL EXEC {cmd}", host=self._play_context.remote_addr)
        try:
            result = self._run(to_text(cmd, errors="surrogate_or_strict"), in_data)
        except qgactl.QgactlError as exc:
            raise _failure(exc) from None
        return result.status, result.stdout, result.stderr

    def _run(self, cmd, in_data):
        """Through the lane (a pipelined module in a fork of its warm python3, anything else
        through /bin/sh), else through the agent."""
        if self._lane is None:
            return self._guest.exec(["/bin/sh", "-c", HOME_FROM_PASSWD + cmd], stdin=in_data)
        python = pipelined_python(cmd) if in_data else None
        if python:
            interpreter, env = python
            return self._lane.exec([interpreter], stdin=in_data, env=env, python=True)
        return self._lane.exec(["/bin/sh", "-c", cmd], stdin=in_data)

    def put_file(self, in_path, out_path):
        """Host file -> guest file, written beside it and renamed into place when complete."""
        super().put_file(in_path, out_path)
        display.vvv(f"QGACTL PUT {in_path} TO {out_path}", host=self._play_context.remote_addr)
        local = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.exists(local):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        try:
            with open(local, "rb") as source:
                (self._lane or self._guest).write_file(out_path, source, mode=0o600)
        except qgactl.QgactlError as exc:
            raise _failure(exc, f"put {in_path} to {out_path}") from None

    def fetch_file(self, in_path, out_path):
        """Guest file -> host file, written beside it and renamed into place when complete."""
        super().fetch_file(in_path, out_path)
        display.vvv(f"QGACTL FETCH {in_path} TO {out_path}", host=self._play_context.remote_addr)
        try:
            (self._lane or self._guest).copy_out(in_path, out_path)
        except qgactl.QgactlError as exc:
            raise _failure(exc, f"fetch {in_path} to {out_path}") from None

    def reset(self):
        self.close()

    def close(self):
        self._lane = None  # its master stays for the next task
        if self._guest is not None:
            guest, self._guest = self._guest, None
            guest.close()
        self._connected = False


def _failure(exc, doing=None):
    """The agent can't be reached, hangs or went away: UNREACHABLE. The guest refused (a
    missing file, a full disk, a blocked command): the task FAILED."""
    message = f"{doing}: {exc.message}" if doing else exc.message
    if exc.hint:
        message += f" (hint: {exc.hint})"
    unreachable = (qgactl.NotFound, qgactl.AgentUnavailable, qgactl.AgentTimeout)
    unreachable += (qgactl.ProtocolError, qgactl.LibvirtFailure)
    if isinstance(exc, unreachable):
        return AnsibleConnectionFailure(message)
    return AnsibleError(message)
