"""What each package holds: every module of the tree (a hand-kept package list once left out
qgactl/commands/), and for the .deb the man page, the completion scripts, the dependencies,
lintian's verdict and Debian 12's own Python packages underneath.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from installs import (
    DEBIAN_12_VERSIONS,
    DEBIAN_SITE,
    Dists,
    Installed,
    qgactl_files,
)

from lab.srctree import ROOT
from qgactl import __version__

pytestmark = pytest.mark.install

COMPLETIONS = {
    "qgactl.bash": "/usr/share/bash-completion/completions/qgactl",
    "_qgactl": "/usr/share/zsh/vendor-completions/_qgactl",
    "qgactl.fish": "/usr/share/fish/vendor_completions.d/qgactl.fish",
}
MAN_PAGE = "/usr/share/man/man1/qgactl.1.gz"


def test_wheel_holds_every_module_of_the_tree(python_dists: Dists, source_modules: set[str]):
    with zipfile.ZipFile(python_dists.wheel) as wheel:
        assert qgactl_files(wheel.namelist()) == source_modules
        entry_points = wheel.read(f"qgactl-{__version__}.dist-info/entry_points.txt").decode()
    assert "qgactl = qgactl.__main__:main" in entry_points


def test_sdist_holds_every_module_of_the_tree(python_dists: Dists, source_modules: set[str]):
    with tarfile.open(python_dists.sdist) as sdist:
        names = [member.name for member in sdist.getmembers() if member.isfile()]
    prefix = f"qgactl-{__version__}/"
    assert qgactl_files(names, prefix) == source_modules
    assert {prefix + "completions/" + name for name in COMPLETIONS} <= set(names)


def deb_files(deb: Path) -> set[str]:
    """The regular files the .deb installs, as absolute paths."""
    data = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name.removeprefix(".") for member in tar.getmembers() if member.isfile()}


def test_deb_holds_the_tool_its_modules_man_page_and_completions(
    deb_package: Path, source_modules: set[str]
):
    assert deb_package.name == f"qgactl_{__version__}_all.deb"
    files = deb_files(deb_package)
    assert qgactl_files(files, DEBIAN_SITE) == source_modules
    assert {"/usr/bin/qgactl", MAN_PAGE, *COMPLETIONS.values()} <= files


def test_deb_depends_on_debians_python_packages(deb_package: Path):
    depends = subprocess.run(
        ["dpkg-deb", "--field", str(deb_package), "Depends"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for package in ("python3-click", "python3-rich", "python3-libvirt", "python3-lxml"):
        assert package in depends, depends


def test_man_page_is_made_from_the_help(deb_installed: Installed):
    page = gzip.decompress(Path(MAN_PAGE).read_bytes()).decode()
    assert '.TH QGACTL "1" ' in page and f'"qgactl {__version__}"' in page, page[:300]
    assert "\n.SH NAME\nqgactl \\- " in page
    assert "Traceback" not in page
    assert "\nping\n" in page  # the command list from --help made it in
    whatis = subprocess.run(["lexgrog", MAN_PAGE], capture_output=True, text=True)
    assert whatis.returncode == 0, whatis.stdout + whatis.stderr
    assert '"qgactl - command-line tool for the QEMU guest agent"' in whatis.stdout


def test_completion_scripts_installed_where_the_shells_look(deb_installed: Installed):
    for name, path in COMPLETIONS.items():
        assert Path(path).read_text() == (ROOT / "completions" / name).read_text(), path


def test_deb_runs_on_debian_12s_python_packages(deb_installed: Installed):
    found = json.loads(
        deb_installed.python_c(
            "import json, click, rich, lxml, lxml.etree, libvirt, importlib.metadata as m\n"
            "v = libvirt.getVersion()\n"
            "print(json.dumps({\n"
            "  'click': [click.__version__, click.__file__],\n"
            "  'rich': [m.version('rich'), rich.__file__],\n"
            "  'lxml': [lxml.etree.__version__, lxml.__file__],\n"
            "  'libvirt': [f'{v // 1000000}.{v // 1000 % 1000}.{v % 1000}', libvirt.__file__],\n"
            "}))"
        )
    )
    assert {name: version for name, (version, _) in found.items()} == DEBIAN_12_VERSIONS
    for _version, path in found.values():
        assert path.startswith(DEBIAN_SITE), path


def test_lintian_reports_no_errors(deb_package: Path):
    changes = next((ROOT / "dist" / "deb").glob(f"qgactl_{__version__}_*.changes"))
    try:
        lintian = subprocess.run(
            ["lintian", "--fail-on", "error", "--info", str(changes)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except FileNotFoundError:
        raise AssertionError("lintian is missing: install it (make deps)") from None
    assert lintian.returncode == 0, lintian.stdout + lintian.stderr
    assert not [line for line in lintian.stdout.splitlines() if line.startswith("E:")]
