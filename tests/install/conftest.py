"""Fixtures for the installed tier: qgactl built as a wheel, an sdist and a .deb, installed, and
run from where it was installed, never from the source tree.

Each is built once per session from a clean copy of the tree (lab/srctree.py: what git knows
of, uncommitted edits included, no .venv or caches). The wheel and the sdist go into fresh
venvs (non-editable, no dev extra); the .deb is built by `make deb` and installed with apt-get
as root, then removed again by package name. Every command runs in an empty directory, so
`python -m qgactl` can't pick up ./qgactl from the tree.

Nothing is skipped: a missing tool (build, apt-get, lintian, root) fails the test loudly.

Fixtures (session-scoped):
    source_modules   the files under qgactl/ that the tree has (what every package must hold)
    python_dists     Dists: .wheel and .sdist paths
    deb_package      the path of dist/qgactl_<version>_all.deb
    deb_installed    an Installed: that .deb installed with apt-get (purged at the end)
    installed        an Installed, parametrized: "wheel", "sdist" (venvs), "deb" (/usr/bin)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from installs import (
    APT_GET,
    DEB,
    DEBIAN_SITE,
    Dists,
    Installed,
    qgactl_files,
    venv_install,
)

from lab.srctree import ROOT, copy_tree, source_files


@pytest.fixture(scope="session")
def source_modules() -> set[str]:
    modules = qgactl_files(source_files())
    assert "qgactl/commands/__init__.py" in modules  # the tree itself is complete
    return modules


@pytest.fixture(scope="session")
def python_dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The wheel and the sdist, built with `python -m build` (isolated) from a clean copy."""
    work = tmp_path_factory.mktemp("dists")
    source = copy_tree(work / "src")
    out = work / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    [wheel] = out.glob("qgactl-*.whl")
    [sdist] = out.glob("qgactl-*.tar.gz")
    return Dists(wheel, sdist)


@pytest.fixture(scope="session")
def deb_package() -> Path:
    """`make deb`: dist/qgactl_<version>_all.deb built with dh-python (build deps installed)."""
    assert os.geteuid() == 0, "the .deb tier installs packages: run it as root (CI does)"
    for stale in ROOT.glob("dist/qgactl_*_all.deb"):
        stale.unlink()
    build = subprocess.run(
        ["make", "-C", str(ROOT), "deb"], capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert DEB.is_file(), sorted(p.name for p in (ROOT / "dist").iterdir())
    return DEB


@pytest.fixture(scope="session")
def deb_installed(deb_package: Path) -> Iterator[Installed]:
    """The .deb installed with apt-get (pulling Debian's python3-* packages), purged after."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run(
        [*APT_GET, "install", "--reinstall", "--no-install-recommends", str(deb_package)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    workdir = Path(tempfile.mkdtemp(prefix="qgactl-installed-deb-"))
    try:
        yield Installed(
            "deb", Path("/usr/bin/qgactl"), Path("/usr/bin/python3"), DEBIAN_SITE, workdir
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run([*APT_GET, "purge", "qgactl"], check=True, capture_output=True, env=env)
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "qgactl"], capture_output=True, text=True
        ).stdout
        assert not status.startswith("ii"), f"qgactl still installed: {status!r}"
        assert not os.path.exists("/usr/bin/qgactl")


@pytest.fixture(scope="session", params=["wheel", "sdist", "deb"])
def installed(request: pytest.FixtureRequest) -> Iterator[Installed]:
    if request.param == "deb":
        yield request.getfixturevalue("deb_installed")
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"qgactl-installed-{request.param}-"))
    try:
        dist = getattr(request.getfixturevalue("python_dists"), request.param)
        (workdir / "run").mkdir()
        yield venv_install(request.param, dist, workdir / "venv", workdir / "run")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
