"""``python -m runner.predict``: label images with a study's best checkpoint (runner.inference.predict)."""

import sys

from runner.cli import command

if __name__ == "__main__":
    sys.exit(command("predict"))
