"""Run an inference benchmark against an earlier commit and this tree, one after the other, on one machine.

    .venv/bin/python -m bench.before_after --before 8da0cfb [-- --jobs 50 --load-jobs 500]

The earlier commit is checked out into a temporary worktree; this tree's
`bench/inference_dispatch.py` runs there with that tree's services, contracts,
local stack and instant runtime first on the import path, then here. Both
figures come from the same machine in one run, so they compare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "bench" / "inference_dispatch.py"


def import_path(tree: Path) -> str:
    """The tree's packages and root, ahead of the editable installs that point at this tree."""
    packages = sorted(str(path) for path in (tree / "services").iterdir() if (path / "pyproject.toml").exists())
    return os.pathsep.join([*packages, str(tree / "contracts"), str(tree)])


def run(tree: Path, label: str, bench_args: list[str]) -> None:
    print(f"=== {label}: {tree}", flush=True)
    environment = {**os.environ, "PYTHONPATH": import_path(tree)}
    command = [sys.executable, "-c", f"import runpy; runpy.run_path({str(BENCH)!r}, run_name='__main__')", *bench_args]
    subprocess.run(command, cwd=tree, env=environment, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit to compare with (e.g. a tag or a hash)")
    parser.add_argument("bench_args", nargs="*", help="passed to bench/inference_dispatch.py (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sdmw-before-") as tmp:
        before = Path(tmp) / "tree"
        git = ["git", "-C", str(REPO_ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(before), args.before], check=True)
        try:
            run(before, f"before ({args.before})", args.bench_args)
            run(REPO_ROOT, "after (this tree)", args.bench_args)
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
