"""amint: the stage functions its notebook calls (see stages.py)."""
from mintkit.papers.amint.stages import *  # noqa: F401,F403
