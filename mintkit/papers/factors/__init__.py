"""factors: the stage functions its notebook calls (see stages.py)."""
from mintkit.papers.factors.stages import *  # noqa: F401,F403
