"""`python -m mintkit run | reproduce | params | report | audit` (the same as the `mintkit` command)."""
import sys

from mintkit.batch.cli import main

sys.exit(main())
