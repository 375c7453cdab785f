"""``python -m runner.summary``: (re)write a study's summary tables (runner.results.tables)."""

import sys

from runner.results.tables import main

if __name__ == "__main__":
    sys.exit(main())
