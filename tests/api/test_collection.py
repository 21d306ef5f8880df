"""The Ansible collection builds with ansible-galaxy, installs, carries qgactl's version, and
ansible-doc reads both plugins' documentation (fast tier: no guest; test_ansible.py runs them)."""

from __future__ import annotations

import json
import os
import subprocess

from lab import ansiblelab


def test_collection_builds_installs_and_documents(tmp_path):
    collections = ansiblelab.install_collections(tmp_path, reference=False)
    manifest = tmp_path / "collections" / "ansible_collections" / "qgactl" / "guest"
    info = json.loads((manifest / "MANIFEST.json").read_text())["collection_info"]
    assert (info["namespace"], info["name"]) == ("qgactl", "guest")
    assert info["version"] == ansiblelab.qgactl_version()
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections, "PYTHONWARNINGS": "ignore"}
    for kind, name, option in (("connection", "qgactl.guest.agent", "ansible_qgactl_socket"),
                               ("inventory", "qgactl.guest.domains", "uris")):  # fmt: skip
        doc = subprocess.run(
            [ansiblelab.BIN / "ansible-doc", "--json", "-t", kind, name],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )  # fmt: skip
        assert option in doc.stdout, doc.stderr
