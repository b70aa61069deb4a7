"""Custody of what was audited, and the owner-split design (``docs/audit.md``, "Designs" and "Custody").

* `file_digest` / `tree_digest`: sha256 and size of the audited model file, and a content hash of every
  tree (over the sorted relative paths and each file's sha256), for ``audit.md`` and ``params.json``.
* `owner_split`: the strong design. *Before* publishing, the data owner splits their class-per-folder tree
  at random (per class, seeded) into a released half and a kept half, and records the seed and every
  file's hash in ``owner_split.json``. Whoever trains on the released half never sees the kept half, so
  auditing with members = released and non-members = kept tests a null that the split itself sampled:
  under "not trained on the released half" both halves are exchangeable by construction.
  Command line: ``python -m mintkit.audit.custody SRC OUT [--seed S] [--fraction F]``.
* `check_owner_split`: an audit given ``owner_split`` checks that its members and non-members trees are
  exactly that record's released and kept halves (file by file) before anything runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from mintkit.audit.data import AuditInputError, scan_tree
from mintkit.core.records import write_json

RECORD_FORMAT = "mintkit-owner-split-1"
HALVES = ("released", "kept")


def file_digest(path: str | Path) -> dict:
    """{'path', 'sha256', 'bytes'} of one file (read in 1 MiB blocks)."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": n}


def tree_files(root: str | Path, role: str = "tree") -> dict[str, str]:
    """{'<class>/<file name>': sha256} of a class-per-folder tree's images."""
    root = Path(root)
    return {f"{c}/{p.name}": file_digest(p)["sha256"] for c, ps in scan_tree(root, role).items() for p in ps}


def digest_of(files: dict[str, str]) -> str:
    """sha256 over the sorted 'relative path<TAB>file sha256' lines: the same images, the same hash."""
    return hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()


def tree_digest(root: str | Path, role: str = "tree") -> dict:
    """{'path', 'files', 'sha256'} of a tree (see `digest_of`)."""
    files = tree_files(root, role)
    return {"path": str(root), "files": len(files), "sha256": digest_of(files)}


def owner_split(src: str | Path, out: str | Path, seed: int = 0, fraction: float = 0.5) -> dict:
    """Split the class-per-folder tree `src` at random into out/released and out/kept (files copied; per class,
    round(fraction * n) released) and write out/owner_split.json: seed, fraction, every file's sha256 per half
    and each half's digest. Returns the record. Refuses an `out` that already holds either half."""
    if not 0.0 < fraction < 1.0:
        raise AuditInputError(f"fraction={fraction}: must lie in (0, 1)")
    src, out = Path(src), Path(out)
    tree = scan_tree(src, "owner data")
    if any((out / h).exists() for h in HALVES):
        raise AuditInputError(f"{out} already holds released/ or kept/: choose an empty folder (a split is drawn once)")
    rng = np.random.default_rng(seed)
    files: dict[str, dict[str, str]] = {h: {} for h in HALVES}
    for c, paths in tree.items():  # sorted classes, sorted files: the same tree and seed give the same split
        perm = rng.permutation(len(paths))
        k = round(len(paths) * fraction)
        if k == 0 or k == len(paths):
            raise AuditInputError(f"class {c!r} has {len(paths)} image(s): too few to put some in each half")
        for i, j in enumerate(perm):
            half = HALVES[0] if i < k else HALVES[1]
            dest = out / half / c / paths[j].name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(paths[j], dest)
            files[half][f"{c}/{paths[j].name}"] = file_digest(dest)["sha256"]
    record = {"format": RECORD_FORMAT, "source": str(src), "seed": int(seed), "fraction": float(fraction),
              "rule": "per class folder, numpy default_rng(seed).permutation over the sorted file names; the first "
                      "round(fraction * n) are released",
              **{h: {"path": h, "files": len(files[h]), "sha256": digest_of(files[h]), "file_sha256": files[h]}
                 for h in HALVES}}
    write_json(out / "owner_split.json", record)
    return record


def read_record(path: str | Path) -> dict:
    """The owner-split record at `path`, checked for its format."""
    p = Path(path)
    if not p.is_file():
        raise AuditInputError(f"--owner-split: {p} does not exist (write one with python -m mintkit.audit.custody)")
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise AuditInputError(f"--owner-split: {p} is not JSON ({e})") from None
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        raise AuditInputError(f"--owner-split: {p} is not an owner-split record (format {RECORD_FORMAT!r})")
    return rec


def check_owner_split(path: str | Path, members: str | Path, nonmembers: str | Path) -> dict:
    """Check that `members` is the record's released half and `nonmembers` its kept half, file by file.

    Returns {'seed', 'fraction', 'record', 'record_sha256', 'released', 'kept'} for the report. Raises
    AuditInputError naming missing, extra or changed files: the design holds only for the split as drawn.
    """
    rec = read_record(path)
    for half, tree, role in (("released", members, "members"), ("kept", nonmembers, "nonmembers")):
        want, have = rec[half]["file_sha256"], tree_files(tree, role)
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        changed = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        if missing or extra or changed:
            parts = [f"{len(v)} {what} (e.g. {', '.join(v[:3])})" for what, v in
                     (("missing", missing), ("not in the record", extra), ("changed", changed)) if v]
            raise AuditInputError(f"--owner-split: --{role} ({tree}) is not the record's {half} half: "
                                  f"{'; '.join(parts)}. Audit with the halves exactly as the split wrote them, or "
                                  "drop --owner-split (the design is then undeclared)")
    return {"seed": rec["seed"], "fraction": rec["fraction"], "record": str(path),
            "record_sha256": file_digest(path)["sha256"],
            **{h: {"files": rec[h]["files"], "sha256": rec[h]["sha256"]} for h in HALVES}}


def main(argv: list[str] | None = None) -> int:
    """``python -m mintkit.audit.custody SRC OUT [--seed S] [--fraction F]``: the owner's random split."""
    a = argparse.ArgumentParser(prog="python -m mintkit.audit.custody",
                                description="split your class-per-folder tree at random BEFORE publishing: "
                                            "release OUT/released, keep OUT/kept, keep OUT/owner_split.json")
    a.add_argument("src")
    a.add_argument("out")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--fraction", type=float, default=0.5, help="share of each class released (default 0.5)")
    args = a.parse_args(argv)
    try:
        rec = owner_split(args.src, args.out, args.seed, args.fraction)
    except AuditInputError as e:
        print(f"error: {e}")
        return 2
    out = Path(args.out)
    print(f"released {rec['released']['files']} images to {out / 'released'}, kept {rec['kept']['files']} in "
          f"{out / 'kept'}; record {out / 'owner_split.json'}. Publish only released/; audit later with\n"
          f"  python -m mintkit audit --model MODEL ... --members {out / 'released'} --nonmembers {out / 'kept'} "
          f"--owner-split {out / 'owner_split.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
