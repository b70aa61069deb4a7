"""One resolution of the relative paths in a run's parameters (``data_root``, ``imagefolder:PATH`` datasets,
``checkpoint`` files, the notebook's default ``out_dir``), the same from the CLI and from Jupyter.

A relative path is taken relative to the mintkit *home*:

1. ``$MINTKIT_HOME`` when set;
2. else the repository root, when mintkit runs from a checkout (the folder holding ``pyproject.toml`` and
   ``mintkit/``; an editable install counts);
3. else the working directory (an installed package has no repository).

So ``data_root: data`` is ``<repo>/data`` whether the notebook runs in Jupyter (working directory
``notebooks/``) or through ``python -m mintkit`` from the repository root, and there is one data folder. The
CLI's own path options (``reproduce``/``run``/``audit --out``, ``report --runs``/``--out``, ``audit --model``,
``--members`` and the other trees) are shell arguments and stay relative to the shell's directory (``audit`` makes
its ``--out`` absolute before it becomes the run's ``out_dir``, which would otherwise resolve against the home).
The dataset caches live apart from both (``mintkit.core.data.data_cache``: ``~/.cache/mintkit/data``).

Files mintkit writes atomically (a temp file, then a rename) get the mode an ordinary ``open()`` would give them,
0666 less the umask (`shareable`): tempfile's 0600 would hide results from a group sharing the filesystem.
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


def shareable(path: str | Path) -> None:
    """Give a file made by tempfile (mode 0600) the mode of an ordinary open(): 0666 less the umask (0644 under the
    usual 022), so colleagues on a shared filesystem read the results as they read the figures."""
    mask = os.umask(0o022)  # the umask can only be read by setting it; restored at once
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def resolve(path: str | Path) -> Path:
    """`path` with ``~`` expanded; a relative one joined to `home()`. Nothing is created."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else home() / p
