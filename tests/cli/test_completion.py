"""Completion requests answered by a real qgactl process, as completions/qgactl.bash asks them.

Domains come from libvirt's test driver (test:///default: one running domain, "test"), agent
commands and mountpoints from a real host-run qemu-ga, and failures from a libvirt socket that
is missing or never answers: completion must then answer nothing, silently, within ~1 s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import click
import pytest
from click.shell_completion import ShellComplete
from shellcomplete import bash_complete

from qgactl import completion

TEST_URI = "test:///default"


def values(qgactl, line, env=None):
    return [value for _, value in bash_complete(qgactl, line, env)]


def test_subcommands_and_options(qgactl):
    assert values(qgactl, "qgactl pi") == ["ping"]
    assert {"doctor", "domains"} <= set(values(qgactl, "qgactl d"))
    assert values(qgactl, "qgactl --con") == ["--connect"]
    assert values(qgactl, "qgactl ping --wa") == ["--wait"]
    assert values(qgactl, "qgactl completion ") == ["bash", "fish", "zsh"]


def test_output_choices(qgactl):
    assert values(qgactl, "qgactl -o ") == ["auto", "table", "json", "raw"]
    assert values(qgactl, "qgactl --output=js") == ["json"]


def test_domains_from_the_connect_given_on_the_line(qgactl):
    assert values(qgactl, f"qgactl -c {TEST_URI} ping ") == ["test"]
    assert values(qgactl, f"qgactl --connect={TEST_URI} -o json info t") == ["test"]
    assert values(qgactl, f"qgactl --connect {TEST_URI} doctor ") == ["test"]
    assert values(qgactl, f"qgactl -c {TEST_URI} ping x") == []
    assert values(qgactl, "qgactl ping ", env={"LIBVIRT_DEFAULT_URI": TEST_URI}) == ["test"]


def test_no_domain_with_socket(qgactl):
    assert values(qgactl, f"qgactl -c {TEST_URI} --socket /tmp/x.sock ping ") == []


def test_unreachable_libvirt_completes_nothing_silently(qgactl):
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    assert bash_complete(qgactl, f"qgactl -c {uri} ping ") == []
    assert bash_complete(qgactl, f"qgactl -c {uri} raw vm1 guest-ping") == [("plain", "guest-ping")]


def test_a_libvirt_that_never_answers_is_given_up_within_the_deadline(qgactl, tmp_path):
    path = str(tmp_path / "libvirt-sock")
    with socket.socket(socket.AF_UNIX) as silent:  # accepts connections, never answers
        silent.bind(path)
        silent.listen(8)
        run = qgactl(
            env={
                "COMP_WORDS": f"qgactl -c qemu+unix:///system?socket={path} ping ",
                "COMP_CWORD": "1000",
                "_QGACTL_COMPLETE": "bash_complete",
            }
        )
    assert (run.code, run.stdout.strip(), run.stderr) == (0, "", "")
    assert completion.LOOKUP_DEADLINE <= run.seconds < completion.LOOKUP_DEADLINE + 2


def test_raw_completes_the_domain_then_agent_commands(qgactl):
    assert values(qgactl, f"qgactl -c {TEST_URI} raw ") == ["test"]
    # the test driver has no agent: the built-in qemu-ga 7.2 list
    assert values(qgactl, f"qgactl -c {TEST_URI} raw test guest-fsfreeze-") == [
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-freeze-list",
        "guest-fsfreeze-status",
        "guest-fsfreeze-thaw",
    ]
    assert values(qgactl, f"qgactl -c {TEST_URI} raw test guest-ping ") == []
    assert values(qgactl, 'qgactl --socket /nonexistent raw \'{"execute": "gu') == []
    assert len(values(qgactl, "qgactl --socket /nonexistent raw ")) == 42


@pytest.mark.agent
def test_raw_commands_come_from_the_agents_guest_info(qgactl, host_agent):
    # The host agent blocks every state-changing command: only the status is left enabled.
    line = f"qgactl --socket {host_agent.socket_path} raw guest-fsfreeze-"
    assert values(qgactl, line) == ["guest-fsfreeze-status"]


@pytest.mark.agent
def test_mountpoints_from_the_guests_fsinfo(host_agent):
    """complete_mountpoints on a command shaped like the fs commands (DOMAIN, --mountpoint)."""

    @click.group()
    @click.option("--socket")
    @click.option("--connect")
    def root(socket, connect):
        pass

    @root.command()
    @click.argument("domain", required=False)
    @click.option("--mountpoint", shell_complete=completion.complete_mountpoints)
    def freeze(domain, mountpoint):
        pass

    def ask(args, incomplete):
        shell = ShellComplete(root, {}, "qgactl", "_QGACTL_COMPLETE")
        return [item.value for item in shell.get_completions(args, incomplete)]

    assert "/" in ask(["--socket", host_agent.socket_path, "freeze", "--mountpoint"], "")
    assert ask(["--socket", host_agent.socket_path, "freeze", "--mountpoint"], "/nope") == []
    # a domain on a libvirt that isn't there: nothing, silently
    uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    assert ask(["--connect", uri, "freeze", "vm1", "--mountpoint"], "") == []
    assert ask(["freeze", "--mountpoint"], "") == []  # no domain yet


def test_completion_does_not_import_rich():
    env = dict(os.environ)
    env.update(COMP_WORDS=f"qgactl -c {TEST_URI} ping ", COMP_CWORD="1000")
    env["_QGACTL_COMPLETE"] = "bash_complete"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qgactl"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "plain,test\n"
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "libvirt" in imported
    assert not {name for name in imported if name.split(".")[0] in ("rich", "lxml")}
