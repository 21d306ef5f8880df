"""qgactl against scripted agents that are silent, broken or hostile (tests/fakeagent.py).

Each case runs qgactl as a real process with `-t 1` and checks the documented exit code, that it
ends within the timeout plus a little, with bounded memory, one line on stderr and no traceback;
the well-formed cases must succeed, and guest text must never reach the terminal raw.
"""

from __future__ import annotations

import json

import fakeagent
import pytest
from fakeagent import NASTY, NASTY_CHARS, FakeAgent

TIMEOUT = 1.0
SLACK = 1.5  # process start-up and a loaded machine; far below any "hang"
MIB_IN_KIB = 1024


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch):
    """No forced colours: any ESC in a table must then have come from the guest."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def run_against(qgactl, scenario, *args, env=None):
    with FakeAgent(scenario) as agent:
        run = qgactl("--socket", agent.path, "-t", str(TIMEOUT), *args, env=env)
    assert agent.connections == 1  # qgactl neither retried nor gave up before connecting
    return run


def assert_clean_failure(run, code, *, rss_mib=100):
    assert run.code == code, (run.code, run.stderr)
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()  # exactly one line
    assert line.startswith("qgactl: ")
    assert run.seconds < TIMEOUT + SLACK, run.seconds
    assert run.max_rss_kib < rss_mib * MIB_IN_KIB, run.max_rss_kib
    return line


# -- the agent doesn't answer, or hangs up ------------------------------------------------------


def test_silent_agent_times_out(qgactl):
    run = run_against(qgactl, fakeagent.silent, "ping")
    line = assert_clean_failure(run, 5)
    assert run.seconds >= TIMEOUT * 0.9  # it did wait for the whole deadline
    assert "within 1s" in line and "hint:" in line and "another client" in line


def test_agent_that_closes_at_once_is_unavailable(qgactl):
    run = run_against(qgactl, fakeagent.closes_at_once, "ping")
    line = assert_clean_failure(run, 4)
    assert run.seconds < TIMEOUT  # no waiting for a peer that is gone
    assert "closed" in line or "failed" in line
    assert "hint:" in line


def test_drip_past_the_deadline_times_out(qgactl):
    """One byte every 0.1 s never trips a per-recv timeout: only a whole-call deadline ends it."""
    run = run_against(qgactl, fakeagent.drip, "raw", "guest-get-host-name")
    assert_clean_failure(run, 5)
    assert run.seconds >= TIMEOUT * 0.9


# -- the handshake survives junk and stale replies --------------------------------------------


def test_junk_before_a_valid_sync_is_ignored(qgactl):
    run = run_against(qgactl, fakeagent.junk_then_sync, "-o", "json", "ping")
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    [result] = run.json()
    assert result["ok"] is True and result["exit_code"] == 0
    assert run.seconds < TIMEOUT + SLACK


def test_stale_replies_before_the_sentinel_are_not_the_answer(qgactl):
    run = run_against(qgactl, fakeagent.stale_replies, "raw", "guest-get-host-name")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"return": {"host-name": "fresh"}}
    assert run.stderr == ""


def test_sync_answered_with_the_wrong_id_is_a_protocol_error(qgactl):
    run = run_against(qgactl, fakeagent.wrong_sync_id, "ping")
    line = assert_clean_failure(run, 7)
    assert "guest-sync-delimited" in line and "expected" in line


def test_flood_of_huge_wrong_ids_keeps_memory_and_the_message_small(qgactl):
    run = run_against(qgactl, fakeagent.wrong_sync_id_flood, "ping")
    line = assert_clean_failure(run, 7)
    assert "expected" in line and len(line) < 500
    assert_no_terminal_hazards(run.stderr)


# -- oversized, malformed and wrongly shaped replies -------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    [fakeagent.endless_line_in_sync, fakeagent.endless_line_reply],
    ids=["sync", "reply"],
)
def test_endless_line_is_refused_at_the_bound(qgactl, scenario):
    run = run_against(qgactl, scenario, "ping")
    line = assert_clean_failure(run, 7, rss_mib=200)
    assert "longer than" in line


def test_300_mib_reply_is_refused_without_buffering_it(qgactl):
    run = run_against(qgactl, fakeagent.huge_reply, "raw", "guest-get-host-name")
    line = assert_clean_failure(run, 7, rss_mib=200)
    assert run.max_rss_kib < fakeagent.HUGE_REPLY_MIB * MIB_IN_KIB / 2
    assert "longer than" in line


@pytest.mark.parametrize("command", [("ping",), ("osinfo",), ("raw", "guest-get-host-name")])
def test_invalid_utf8_is_a_protocol_error(qgactl, command):
    run = run_against(qgactl, fakeagent.answering(fakeagent.INVALID_UTF8), *command)
    line = assert_clean_failure(run, 7)
    assert "not JSON" in line


def test_deeply_nested_json_is_a_protocol_error(qgactl):
    run = run_against(qgactl, fakeagent.answering(fakeagent.DEEP_NESTING), "raw", "guest-info")
    line = assert_clean_failure(run, 7)
    assert "not JSON" in line


@pytest.mark.parametrize("reply", fakeagent.WRONG_SHAPES.values(), ids=fakeagent.WRONG_SHAPES)
@pytest.mark.parametrize("command", [("ping",), ("raw", "guest-info")])
def test_wrong_shape_is_a_protocol_error(qgactl, reply, command):
    run = run_against(qgactl, fakeagent.answering(reply), *command)
    line = assert_clean_failure(run, 7)
    assert "wrong shape" in line


@pytest.mark.parametrize(
    "reply",
    [b'{"return": 1}\n', b'{"return": {"supported_commands": "all"}}\n'],
    ids=["number", "commands-not-a-list"],
)
def test_valid_reply_that_does_not_fit_the_model_is_a_protocol_error(qgactl, reply):
    run = run_against(qgactl, fakeagent.answering(reply), "info")
    assert_clean_failure(run, 7)


# -- guest strings never reach the terminal raw ------------------------------------------------

WIDE = {"COLUMNS": "300"}  # rich wraps cells at the pipe's default 80 columns


def assert_no_terminal_hazards(text):
    for char in NASTY_CHARS:
        assert char not in text, f"raw {char!r} in output"


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["json-escaped", "raw-utf8"])
def test_escapes_in_the_table_are_shown_not_obeyed(qgactl, ensure_ascii):
    scenario = fakeagent.escapes(ensure_ascii=ensure_ascii)
    run = run_against(qgactl, scenario, "-o", "table", "osinfo", env=WIDE)
    assert run.code == 0, run.stderr
    assert_no_terminal_hazards(run.stdout)
    # markup shown as text, escapes made visible
    assert NASTY["markup"] in run.stdout
    assert NASTY["link"] in run.stdout
    assert "\\x1b]0;pwned\\x07" in run.stdout
    assert "\\x1b[2J" in run.stdout
    assert "\\x9b31m" in run.stdout
    assert "abc\\u202edef" in run.stdout


def test_escapes_in_the_info_table_title_and_rows(qgactl):
    run = run_against(qgactl, fakeagent.escapes(), "-o", "table", "info", env=WIDE)
    assert run.code == 0, run.stderr
    assert_no_terminal_hazards(run.stdout)
    assert "7.2 [bold red]x[/]\\x1b]0;pwned\\x07" in run.stdout  # the title
    assert "[link=http://x]y[/link]\\x1b[2J" in run.stdout


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["json-escaped", "raw-utf8"])
@pytest.mark.parametrize("command", ["osinfo", "info"])
def test_escapes_in_json_output_are_escaped_and_the_values_unchanged(qgactl, ensure_ascii, command):
    scenario = fakeagent.escapes(ensure_ascii=ensure_ascii)
    run = run_against(qgactl, scenario, "-o", "json", command)
    assert run.code == 0, run.stderr
    assert_no_terminal_hazards(run.stdout)
    data = run.json()
    if command == "osinfo":
        assert data["pretty_name"] == NASTY["title"] + " " + NASTY["markup"]
        assert data["version"] == NASTY["clear"]
        assert data["id"] == NASTY["csi8"]
        assert data["kernel_release"] == NASTY["bidi"]
    else:
        assert data["version"] == fakeagent.ESCAPES_INFO["version"]
        assert {c["name"] for c in data["commands"]} == {
            c["name"] for c in fakeagent.ESCAPES_INFO["supported_commands"]
        }


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["json-escaped", "raw-utf8"])
@pytest.mark.parametrize(
    "args",
    [
        ("raw", "guest-get-host-name"),
        ("raw", "guest-get-host-name", "--pretty"),
        ("-o", "raw", "osinfo"),
    ],
    ids=["raw", "raw-pretty", "output-raw"],
)
def test_escapes_in_raw_output(qgactl, ensure_ascii, args):
    run = run_against(qgactl, fakeagent.escapes(ensure_ascii=ensure_ascii), *args)
    assert run.code == 0, run.stderr
    assert_no_terminal_hazards(run.stdout)
    reply = json.loads(run.stdout)["return"]
    if "osinfo" in args:
        assert reply["kernel-release"] == NASTY["bidi"]
    else:
        assert reply["host-name"] == "".join(NASTY.values())


def test_agent_error_with_escapes_is_one_escaped_line(qgactl):
    run = run_against(qgactl, fakeagent.agent_error_with_escapes, "raw", "guest-get-host-name")
    line = assert_clean_failure(run, 6)
    assert_no_terminal_hazards(run.stderr)
    assert "\\x1b]0;pwned\\x07" in line and "\\x9b31m" in line and "\\u202e" in line
    assert "\\x0aL2" in line  # the guest's newline did not split the error


def test_agent_error_through_a_typed_command(qgactl):
    run = run_against(qgactl, fakeagent.agent_error_with_escapes, "osinfo")
    line = assert_clean_failure(run, 6)
    assert_no_terminal_hazards(run.stderr)
    assert "guest-get-osinfo" in line


def test_debug_trace_redacts_passwords(qgactl):
    """A password sent with guest-set-user-password never appears in a --debug trace."""
    request = (
        '{"execute":"guest-set-user-password",'
        '"arguments":{"username":"root","password":"c2VjcmV0","crypted":false}}'
    )
    run = run_against(qgactl, fakeagent.answering(fakeagent.PING_OK), "--debug", "raw", request)
    assert run.code == 0, run.stderr
    assert "c2VjcmV0" not in run.stderr
    assert '"password":"<redacted>"' in run.stderr
