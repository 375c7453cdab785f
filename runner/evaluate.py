"""``python -m runner.evaluate``: evaluate a study's best checkpoint on an image folder (runner.inference.evaluate)."""

import sys

from runner.inference.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
