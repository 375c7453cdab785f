"""``python -m runner.report``: (re)write a study's report.html (runner.results.report)."""

import sys

from runner.cli import command

if __name__ == "__main__":
    sys.exit(command("report"))
