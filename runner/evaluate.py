"""``python -m runner.evaluate``: evaluate a study's best checkpoint on an image folder (runner.inference.evaluate)."""

import sys

from runner.cli import command

if __name__ == "__main__":
    sys.exit(command("evaluate"))
