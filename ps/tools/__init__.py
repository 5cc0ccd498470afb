"""Command-line tools beside the server: ps-status (a live run) and ps-report (plots of a run dir)."""
