"""The version lives in qgactl/__init__.py; pyproject.toml reads it from there and
debian/changelog must name the same one (the .deb is dist/qgactl_<version>_all.deb)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from qgactl import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_takes_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "qgactl.__version__"}


def test_debian_changelog_names_the_same_version():
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    match = re.fullmatch(r"qgactl \(([^)]+)\) \S+; urgency=\S+", first)
    assert match, first
    assert match[1] == __version__, "bump debian/changelog (dch -v) with qgactl.__version__"
