"""`python -m mintkit run | reproduce | report`."""
import sys

from mintkit.batch.cli import main

sys.exit(main())
