"""gmint: the stage functions its notebook calls (see stages.py)."""
from mintkit.papers.gmint.stages import *  # noqa: F401,F403
