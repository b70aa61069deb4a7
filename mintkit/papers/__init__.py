"""One folder per paper: its typed parameters, the stage functions its notebook calls, and its report."""
