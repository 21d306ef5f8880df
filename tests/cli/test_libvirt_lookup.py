"""Domain lookup and listing against libvirt's built-in test driver (no daemon needed).

The test driver (test:///default) has one running domain, "test", with ID 1 and no agent
channel; it can't run agent commands, so these tests stop at discovery.
"""

from __future__ import annotations

import pytest

TEST_URI = "test:///default"
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def test_domains_lists_state_agent_and_transport(qgactl):
    run = qgactl("-c", TEST_URI, "-o", "json", "domains")
    assert run.code == 0, run.stderr
    [domain] = run.json()
    assert domain["name"] == "test"
    assert domain["uuid"] == TEST_UUID
    assert domain["id"] == 1
    assert domain["state"] == "running"
    assert domain["agent"] == "none"
    assert domain["transport"] == "libvirt"


def test_domains_table(qgactl):
    run = qgactl("-c", TEST_URI, "-o", "table", "domains")
    assert run.code == 0, run.stderr
    assert "test" in run.stdout and "running" in run.stdout and "none" in run.stdout


def test_connect_uri_from_the_environment(qgactl):
    run = qgactl("-o", "json", "domains", env={"LIBVIRT_DEFAULT_URI": TEST_URI})
    assert run.code == 0, run.stderr
    assert run.json()[0]["name"] == "test"


@pytest.mark.parametrize("name", ["test", "1", TEST_UUID])
def test_domain_by_name_id_or_uuid_is_found(qgactl, name):
    """The domain resolves; the test driver then can't run agent commands at all."""
    run = qgactl("-c", TEST_URI, "ping", name)
    assert run.code == 9, run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith("qgactl: test: ") and "not supported" in line


def test_unknown_domain_is_exit_3(qgactl):
    run = qgactl("-c", TEST_URI, "info", "no-such-domain")
    assert run.code == 3
    [line] = run.stderr.splitlines()
    assert "'no-such-domain' not found" in line and "qgactl domains" in line


def test_several_domains_one_missing(qgactl):
    run = qgactl("-c", TEST_URI, "-o", "json", "ping", "missing", "test")
    assert run.code == 3  # the first failure's code, in argument order
    results = {r["target"]: r for r in run.json()}
    assert results["missing"]["exit_code"] == 3
    assert results["test"]["exit_code"] == 9
    assert len(run.stderr.splitlines()) == 2


def test_bad_uri_is_a_libvirt_error(qgactl):
    run = qgactl("-c", "bogus:///nowhere", "domains")
    assert run.code == 9
    [line] = run.stderr.splitlines()
    assert "hint:" in line and "Traceback" not in run.stderr


def test_socket_transport_needs_a_socket(qgactl):
    run = qgactl("-c", TEST_URI, "--transport", "socket", "ping", "test")
    assert run.code in (2, 4)
    assert "add-channel" in run.stderr
