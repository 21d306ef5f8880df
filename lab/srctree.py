"""A clean copy of the source tree: what git knows of (committed, staged, and new files that
are not ignored), never .venv, caches, dist/ or lab/build/.

tests/install/ and `make deb` build from such a copy, so a package holds what a fresh clone
would give it, while uncommitted edits still count during development. Not here: building.

    python3 lab/srctree.py DEST      # DEST must not exist yet
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def source_files(root: Path = ROOT) -> list[str]:
    """Paths (relative to root) git tracks or would track; deleted-but-unstaged ones left out."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({name for name in listing.split("\0") if name and (root / name).is_file()})


def copy_tree(dest: Path, root: Path = ROOT) -> Path:
    """Copy source_files() into dest (created; it must not exist) and return dest."""
    dest.mkdir(parents=True)
    for name in source_files(root):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    copy_tree(Path(sys.argv[1]))
