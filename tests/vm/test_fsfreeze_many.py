"""fsfreeze --run over two guests: both frozen while CMD runs (CMD itself checks, through raw
agent calls, not qgactl), both thawed after; if one freeze fails, CMD does not run and the
other guest is thawed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lab import lab
from tests.fakeagent import FakeAgent, serving

ROOT = Path(__file__).resolve().parents[2]


def status(path: str) -> str:
    return str(lab.agent_call(path, "guest-fsfreeze-status")["return"])


def test_two_guests_are_frozen_together_while_cmd_runs(
    qgactl, lab_domain, plain_qemu_guest, tmp_path: Path
) -> None:
    sockets = [str(lab_domain.dedicated_socket), str(plain_qemu_guest.socket_path)]
    seen = tmp_path / "seen.json"
    check = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from lab import lab; "
        f"json.dump([lab.agent_call(p, 'guest-fsfreeze-status')['return'] for p in {sockets!r}],"
        f" open({str(seen)!r}, 'w'))"
    )
    args = [part for path in sockets for part in ("--socket", path)]
    run = qgactl(*args, "fsfreeze", "--run", f'{sys.executable} -c "{check}"', timeout=120)
    assert run.code == 0, run.stderr
    assert json.loads(seen.read_text()) == ["frozen", "frozen"]
    assert [status(path) for path in sockets] == ["thawed", "thawed"]
    assert "thawed" in run.stderr and all(path in run.stderr for path in sockets)


# Thawed, but every freeze fails (as a guest with a broken filesystem would).
BROKEN_FREEZE = b'{"error": {"class": "GenericError", "desc": "failed to freeze /: EIO"}}\n'
ANSWERS = {
    "guest-fsfreeze-status": b'{"return": "thawed"}\n',
    "guest-fsfreeze-freeze": BROKEN_FREEZE,
}
refuses_to_freeze = serving(lambda command: ANSWERS.get(command, b'{"return": 0}\n'))


def test_one_failed_freeze_thaws_the_other_and_cmd_does_not_run(
    qgactl, plain_qemu_guest, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with FakeAgent(refuses_to_freeze) as broken:
        run = qgactl(
            "--socket", str(plain_qemu_guest.socket_path), "--socket", broken.path,
            "fsfreeze", "--run", f"touch {marker}", timeout=120,
        )  # fmt: skip
    assert run.code == 125
    assert "failed to freeze" in run.stderr
    assert not marker.exists()
    assert status(str(plain_qemu_guest.socket_path)) == "thawed"
