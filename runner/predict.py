"""``python -m runner.predict``: label images with a study's best checkpoint (runner.inference.predict)."""

import sys

from runner.inference.predict import main

if __name__ == "__main__":
    sys.exit(main())
