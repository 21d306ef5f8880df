"""Ansible for qgactl's tests and bench: the collection qgactl.guest built and installed from
ansible/, community.libvirt (the reference) from PyPI, and playbooks run with a JSON record.

- ``install_collections(workdir)``: builds ansible/ with ansible-galaxy (qgactl's version) and
  installs it into WORKDIR; community.libvirt comes from the ``ansible`` package on PyPI
  (Galaxy may be unreachable: CI starts from a fresh machine with PyPI only), extracted once
  into lab/build/collections. Returns the ANSIBLE_COLLECTIONS_PATH.
- ``run_playbook(...)``: ansible-playbook with that path and the qgactl_record callback
  (lab/ansible_callbacks): a Run with the exit code, the per-task records and the wall time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The `ansible` release that bundles community.libvirt 2.0.0 (its MANIFEST.json says so).
ANSIBLE_BUNDLE = "12.0.0"
COMMUNITY_LIBVIRT = "2.0.0"
CACHE = ROOT / "lab" / "build" / "collections"
CALLBACKS = ROOT / "lab" / "ansible_callbacks"
BIN = Path(sys.executable).parent  # ansible-galaxy and ansible-playbook of this venv


def qgactl_version() -> str:
    text = (ROOT / "qgactl" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "(.+)"', text, re.M)
    assert match
    return match.group(1)


def community_libvirt() -> Path:
    """A collections path holding community.libvirt, extracted from PyPI's `ansible` once."""
    manifest = CACHE / "ansible_collections" / "community" / "libvirt" / "MANIFEST.json"
    if manifest.exists():
        return CACHE
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             f"ansible=={ANSIBLE_BUNDLE}", "-d", scratch],
            check=True,
        )  # fmt: skip
        [wheel] = Path(scratch).glob("ansible-*.whl")
        prefix = "ansible_collections/community/libvirt/"
        staging = Path(tempfile.mkdtemp(dir=CACHE.parent if CACHE.parent.exists() else None))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging, [n for n in archive.namelist() if n.startswith(prefix)])
        version = json.loads((staging / prefix / "MANIFEST.json").read_text())
        assert version["collection_info"]["version"] == COMMUNITY_LIBVIRT, version
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(CACHE, ignore_errors=True)
        staging.rename(CACHE)  # whole or not at all: a half extraction is never cached
    return CACHE


def install_collections(workdir: Path, *, reference: bool = True) -> str:
    """qgactl.guest built from ansible/ and installed into WORKDIR, plus (``reference``)
    community.libvirt: the value for ANSIBLE_COLLECTIONS_PATH."""
    source = workdir / "source"
    shutil.copytree(ROOT / "ansible", source)
    galaxy = source / "galaxy.yml"
    galaxy.write_text(
        re.sub(r"^version: .*$", f"version: {qgactl_version()}", galaxy.read_text(), flags=re.M)
    )
    built = workdir / "built"
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", built, source],
        check=True, capture_output=True,
    )  # fmt: skip
    [tarball] = built.glob("qgactl-guest-*.tar.gz")
    installed = workdir / "collections"
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--force", "-p", installed, tarball],
        check=True, capture_output=True,
    )  # fmt: skip
    return f"{installed}:{community_libvirt()}" if reference else str(installed)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)

    def task(self, name: str, host: str | None = None) -> dict[str, Any]:
        """The record of task NAME (on HOST)."""
        found = [r for r in self.records if r["task"] == name and host in (None, r["host"])]
        assert found, f"no record of {name!r} on {host}: {self.stdout}\n{self.stderr}"
        return found[-1]


def run_playbook(
    playbook: Path,
    inventory: Path,
    collections: str,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> Run:
    """ansible-playbook in a child process, with the record callback on."""
    record = Path(tempfile.mkstemp(prefix="qgactl-ansible-", suffix=".jsonl")[1])
    child_env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "qgactl_record",
        "QGACTL_ANSIBLE_RECORD": str(record),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": tempfile.gettempdir(),
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    started = time.monotonic()
    try:
        process = subprocess.run(
            [BIN / "ansible-playbook", "-i", inventory, *args, playbook],
            env=child_env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        records = [json.loads(line) for line in record.read_text().splitlines() if line]
    finally:
        record.unlink(missing_ok=True)
    return Run(
        process.returncode, process.stdout, process.stderr, time.monotonic() - started, records
    )
