#!/usr/bin/env python3
"""Install the shipped SLURM profile (profiles/slurm) as your Snakemake profile ``slurm``.

    python tools/install_slurm_profile.py            # -> ~/.config/snakemake/slurm
    python tools/install_slurm_profile.py --force    # overwrite an edited copy
    python tools/install_slurm_profile.py --dest DIR # somewhere else

Afterwards ``snakemake --profile slurm`` (run in the repository root) uses it. The target folder
is the one Snakemake searches for profiles: ``$XDG_CONFIG_HOME/snakemake`` (default
``~/.config/snakemake``), computed the way Snakemake does (platformdirs) when available.

A copy you edited (e.g. filled in ``slurm_account``) is never overwritten without ``--force``;
with ``--force`` the old copy is kept as ``config.yaml.bak``. Re-running on an unmodified copy
is a no-op / refreshes it. This is a standalone script: no Snakemake rule calls it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "profiles" / "slurm"
STAMP = ".installed-from-nobarriers.json"  # hashes of the files as installed


def user_config_dir() -> Path:
    try:
        from platformdirs import user_config_dir as ucd

        return Path(ucd("snakemake", "snakemake"))
    except ImportError:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "snakemake"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name != STAMP and not p.name.endswith(".bak")
    )


def install(dest: Path, force: bool = False, source: Path = SOURCE, out=print) -> int:
    if not (source / "config.yaml").is_file():
        out(f"error: {source / 'config.yaml'} not found (run from a nobarriers checkout)")
        return 2
    stamp_path = dest / STAMP
    if dest.exists():
        if not dest.is_dir():
            out(f"error: {dest} exists and is not a folder; move it away first")
            return 2
        try:
            stamp = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            stamp = None
        modified = []
        for f in _files(dest):
            rel = str(f.relative_to(dest))
            if stamp is None or stamp.get(rel) != _sha(f):
                modified.append(rel)
        if modified and not force:
            out(
                f"{dest} already holds a profile with changes of yours "
                f"({', '.join(modified)}); left untouched.\n"
                f"  compare:   diff -u {source / 'config.yaml'} {dest / 'config.yaml'}\n"
                f"  overwrite: {Path(sys.argv[0]).name} --force  (keeps config.yaml.bak)"
            )
            return 1
        if modified:
            for rel in modified:
                f = dest / rel
                shutil.copy2(f, f.with_name(f.name + ".bak"))
            out(f"backed up your edited files as *.bak in {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for f in _files(source):
        rel = f.relative_to(source)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        hashes[str(rel)] = _sha(target)
    stamp_path.write_text(json.dumps(hashes, indent=1) + "\n")
    out(
        f"installed {source} -> {dest}\n"
        f"  edit the lines marked 'FILL IN' in {dest / 'config.yaml'} for your cluster,\n"
        f"  then run (in the repository root): snakemake --profile {dest.name}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", type=Path, default=None,
                   help="target folder (default: <snakemake user config dir>/NAME)")  # fmt: skip
    p.add_argument("--name", default="slurm", help="profile name (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite an edited copy (keeps .bak)")
    a = p.parse_args(argv)
    dest = a.dest if a.dest is not None else user_config_dir() / a.name
    return install(dest, force=a.force)


if __name__ == "__main__":
    sys.exit(main())
