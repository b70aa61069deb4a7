"""One resolution of the relative paths in a run's parameters (``data_root``, ``imagefolder:PATH`` datasets,
``checkpoint`` files, the notebook's default ``out_dir``), the same from the CLI and from Jupyter.

A relative path is taken relative to the mintkit *home*:

1. ``$MINTKIT_HOME`` when set;
2. else the repository root, when mintkit runs from a checkout (the folder holding ``pyproject.toml`` and
   ``mintkit/``; an editable install counts);
3. else the working directory (an installed package has no repository).

So ``data_root: data`` is ``<repo>/data`` whether the notebook runs in Jupyter (working directory
``notebooks/``) or through ``python -m mintkit`` from the repository root, and there is one data folder. The
CLI's own ``--out`` and ``--runs`` options are shell arguments and stay relative to the shell's directory. The
dataset caches live apart from both (``mintkit.core.data.data_cache``: ``~/.cache/mintkit/data``).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """The folder relative parameter paths are resolved against (see the module docstring)."""
    env = os.environ.get("MINTKIT_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if (PACKAGE_PARENT / "pyproject.toml").is_file() and (PACKAGE_PARENT / "mintkit").is_dir():
        return PACKAGE_PARENT
    return Path.cwd()


def resolve(path: str | Path) -> Path:
    """`path` with ``~`` expanded; a relative one joined to `home()`. Nothing is created."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else home() / p
