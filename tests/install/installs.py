"""What the installed tier knows of an installed qgactl (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.srctree import ROOT
from qgactl import __version__

# Debian 12's own python3-click, python3-rich, python3-lxml and python3-libvirt: the versions
# the .deb must work with (debian/control only asks for these or newer).
DEBIAN_12_VERSIONS = {"click": "8.1.3", "rich": "13.3.1", "lxml": "4.9.2", "libvirt": "9.0.0"}
DEBIAN_SITE = "/usr/lib/python3/dist-packages/"

DEB = ROOT / "dist" / f"qgactl_{__version__}_all.deb"
APT_GET = ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=120"]


@dataclass
class Dists:
    wheel: Path
    sdist: Path


@dataclass
class Installed:
    """One installed qgactl: its console script, its interpreter, where its modules live."""

    kind: str
    qgactl: Path
    python: Path
    site: str  # qgactl's modules must be imported from under here
    workdir: Path  # an empty directory to run in

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the installed console script, or its interpreter when args start with -m or -c."""
        interpreter = args[:1] in (("-m",), ("-c",))
        command = [str(self.python if interpreter else self.qgactl), *args]
        child_env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "QGACTL_OUTPUT")
        }
        child_env.update(env or {})
        return subprocess.run(
            command,
            cwd=self.workdir,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python_c(self, code: str) -> str:
        """What `code` prints when the installed copy's interpreter runs it."""
        result = self.run("-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout


def qgactl_files(names: Iterable[str], prefix: str = "") -> set[str]:
    """The file names under <prefix>qgactl/, prefix stripped: to compare with the tree's."""
    return {name[len(prefix) :] for name in names if name.startswith(prefix + "qgactl/")}


def venv_install(kind: str, dist: Path, venv: Path, workdir: Path) -> Installed:
    """A fresh venv on the dev venv's base interpreter with just `dist` (and its dependencies)
    in it: no pip of its own, the dev venv's pip installs into it (pip --python)."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(dist)],
        check=True,
        timeout=600,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Installed(kind, venv / "bin" / "qgactl", python, site + "/", workdir)
