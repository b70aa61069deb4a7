"""Batch reruns: what to run (plans), papermill execution (runner), the published-vs-reproduced report, the CLI."""
