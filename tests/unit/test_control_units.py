"""The pure parts of the control commands and of issue 12's fixes: public-key checks, the
libvirt error mapping (code 86 in its three meanings), the qemu-ga version in a missing
command's hint, what <pm> says about waking up, the transport fallback rule, and reading a
password from stdin.
"""

from __future__ import annotations

import io

import pytest
from testkeys import public_key

from qgactl import power, transport
from qgactl.discover import DomainInfo
from qgactl.errors import (
    ADDED_IN,
    AgentCommandError,
    AgentTimeout,
    AgentUnavailable,
    ExitCode,
    InvalidUsage,
)
from qgactl.models import AuthorizedKeys
from qgactl.pubkeys import parse_public_keys
from qgactl.render import MAX_SECRET, Terminal
from qgactl.xmlgen import Channel, suspend_states

# -- public keys -------------------------------------------------------------------------------


def test_keys_are_kept_as_written_comments_and_blank_lines_dropped():
    ed = public_key()
    rsa = public_key("ssh-rsa", comment="")
    options = 'from="10.0.0.1",command="echo a b" ' + public_key("ecdsa-sha2-nistp256")
    text = f"# mine\n\n{ed}\r\n  {rsa}  \n{options}\n"
    assert parse_public_keys(text, "keys.pub") == [ed, rsa, options]


@pytest.mark.parametrize(
    "line",
    [
        "ssh-ed25519",  # no blob
        "ssh-ed25519 not-base64!",
        public_key(named="ssh-rsa"),  # the blob is another type's
        public_key("ssh-foo"),  # not an OpenSSH key type
        public_key(comment="evil\x1b]0;title\x07"),  # control characters
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
def test_lines_that_are_not_public_keys_are_refused(line):
    with pytest.raises(InvalidUsage, match=r"keys\.pub, line 2: not an OpenSSH public key"):
        parse_public_keys(public_key() + "\n" + line + "\n", "keys.pub")


def test_a_file_without_keys_is_refused():
    with pytest.raises(InvalidUsage, match="no public key"):
        parse_public_keys("# nothing\n\n", "-")


def test_authorized_keys_reply_is_checked():
    assert AuthorizedKeys.from_reply("root", {"keys": ["a", "b"]}).to_json() == {
        "user": "root",
        "keys": ["a", "b"],
    }
    with pytest.raises(Exception, match="keys"):
        AuthorizedKeys.from_reply("root", {"keys": [1]})


# -- libvirt errors ----------------------------------------------------------------------------


class FakeLibvirtError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


def mapped(code: int, message: str):
    return transport.libvirt_error(FakeLibvirtError(code, message), domain="vm1", command="c")


def test_agent_in_error_is_unavailable_not_a_timeout():
    error = mapped(
        86, "Guest agent is not responding: QEMU guest agent is not available due to an error"
    )
    assert isinstance(error, AgentUnavailable) and error.exit_code == ExitCode.UNAVAILABLE
    assert error.data["agent_state"] == "error"
    assert "restarts in the guest" in error.hint and "libvirtd doesn't clear it" in error.hint
    assert "re-syncs" not in error.hint


def test_the_oversized_reply_itself_is_a_protocol_error_with_the_same_hint():
    """The call whose reply passed 10 MiB: code 38 (a system error), though libvirtd is fine."""
    error = mapped(
        38, "No complete agent response found in 10485760 bytes: Numerical result out of range"
    )
    assert error.exit_code == ExitCode.PROTOCOL and "10 MiB" in error.message
    assert "restarts in the guest" in error.hint and "libvirtd running" not in error.hint


def test_a_real_timeout_stays_a_timeout():
    error = mapped(86, "Guest agent is not responding: Guest agent not available for now")
    assert isinstance(error, AgentTimeout) and "re-syncs" in error.hint


@pytest.mark.parametrize(
    ("code", "message"),
    [(86, "Guest agent disappeared while executing command"), (1, "End of file from agent socket")],
)
def test_the_agent_going_away_is_marked_gone(code, message):
    error = mapped(code, message)
    assert isinstance(error, AgentUnavailable) and error.data["gone"] is True


def test_not_connected_is_not_gone():
    error = mapped(86, "Guest agent is not responding: QEMU guest agent is not connected")
    assert isinstance(error, AgentUnavailable) and "gone" not in error.data


# -- feature detection: the version that added a command ----------------------------------------


def test_a_missing_command_names_the_qemu_ga_version_that_added_it():
    error = AgentCommandError(
        "guest-ssh-get-authorized-keys",
        "CommandNotFound",
        "The command guest-ssh-get-authorized-keys has not been found",
    )
    assert error.exit_code == ExitCode.AGENT_ERROR
    assert "guest-ssh-get-authorized-keys (added in qemu-ga 5.2)" in error.hint


def test_an_unknown_command_without_a_version_still_gets_a_hint():
    error = AgentCommandError(
        "guest-x", "CommandNotFound", "The command guest-x has not been found"
    )
    assert "qgactl info" in error.hint and "added" not in error.hint


def test_since_matches_the_7_2_schema():
    """Every ADDED_IN entry older than 7.2 is in the schema this machine ships, with that Since."""
    import gzip
    import re

    with gzip.open("/usr/share/doc/qemu-guest-agent/qapi-schema.json.gz", "rt") as schema_file:
        schema = schema_file.read()
    for command, version in ADDED_IN.items():
        block = re.search(r"# Since: (\S+)\n##\n\{ 'command': '" + re.escape(command) + "'", schema)
        if tuple(map(int, version.split("."))) <= (7, 2):
            assert block is not None, command
            assert block.group(1) == version, command
        else:
            assert block is None, command  # newer than 7.2: not in its schema


# -- waking up from a suspend ------------------------------------------------------------------

DOMAIN = "<domain type='qemu'><name>vm1</name>{}</domain>"


def test_suspend_states_from_pm():
    xml = DOMAIN.format("<pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='yes'/></pm>")
    assert suspend_states(xml) == {"suspend-to-mem": False, "suspend-to-disk": True}
    assert suspend_states(DOMAIN.format("")) == {"suspend-to-mem": None, "suspend-to-disk": None}


@pytest.mark.parametrize("mode", ["ram", "hybrid"])
def test_no_s3_means_no_wake_up_from_ram(mode):
    xml = DOMAIN.format("<pm><suspend-to-mem enabled='no'/></pm>")
    with pytest.raises(InvalidUsage, match=f"vm1 can't wake up from suspend-to-{mode}"):
        power.wake_advice(mode, "vm1", xml)
    assert power.wake_advice(mode, "vm1", DOMAIN.format("")) == "virsh dompmwakeup vm1"
    assert "system_wakeup" in power.wake_advice(mode, "sock", None)


def test_disk_powers_off_whatever_pm_says():
    xml = DOMAIN.format("<pm><suspend-to-disk enabled='no'/></pm>")
    assert power.wake_advice("disk", "vm1", xml).endswith("virsh start vm1 resumes it")


# -- the fallback rule -------------------------------------------------------------------------


def info(*channels: Channel) -> DomainInfo:
    return DomainInfo("vm1", "u", 1, "running", channels)


AGENT0 = Channel("org.qemu.guest_agent.0", "unix", "bind", "/run/a.0", "connected")
AGENT1 = Channel("org.qemu.guest_agent.1", "unix", "bind", "/run/a.1", "connected")


def test_fallback_socket_even_when_libvirts_channel_looks_connected():
    """libvirt's error state shows .0 as connected: auto still asks libvirt first, and the
    fallback (after libvirt said unavailable) is the dedicated socket."""
    assert info(AGENT0, AGENT1).transport("auto") == ("libvirt", None)
    assert info(AGENT0, AGENT1).fallback_socket() == "/run/a.1"
    assert info(AGENT0, AGENT1._replace(state="disconnected")).fallback_socket() is None
    assert info(AGENT0, AGENT1).fallback_socket(remote=True) is None
    assert info(AGENT0).fallback_socket() is None


# -- a password from stdin ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("pw\n", "pw"), ("pw", "pw"), ("p w\r\n", "p w")])
def test_secret_is_one_line_of_stdin(text, expected):
    assert Terminal(stderr=io.StringIO()).secret("pw", io.StringIO(text)) == expected


@pytest.mark.parametrize("text", ["", "\n", "a\nb\n", "a\n\n", "x" * (MAX_SECRET + 1)])
def test_secret_refuses_empty_several_lines_or_too_long(text):
    with pytest.raises(InvalidUsage):
        Terminal(stderr=io.StringIO()).secret("pw", io.StringIO(text))
