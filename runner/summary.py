"""``python -m runner.summary``: (re)write a study's summary tables (runner.results.tables)."""

import sys

from runner.cli import command

if __name__ == "__main__":
    sys.exit(command("summary"))
