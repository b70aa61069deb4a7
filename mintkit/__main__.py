"""`python -m mintkit run | reproduce | report`."""
import sys

from .cli import main

sys.exit(main())
