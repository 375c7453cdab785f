"""``python -m runner.summary``: (re)write a study's summary tables (runner.results.summary)."""

import sys

from runner.results.summary import main

if __name__ == "__main__":
    sys.exit(main())
