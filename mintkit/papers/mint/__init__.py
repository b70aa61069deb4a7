"""mint: the stage functions its notebook calls (see stages.py)."""
from mintkit.papers.mint.stages import *  # noqa: F401,F403
