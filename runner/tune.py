"""``python -m runner.tune``: run a study (runner.driver.cli)."""

from runner.driver.cli import exit_process, main

if __name__ == "__main__":
    exit_process(main(exiting=True))
