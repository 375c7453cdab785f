"""The ``runner`` command: ``runner tune|evaluate|predict|summary|report ...``, one subcommand per module.

Each subcommand is the module's own argparse arguments and ``run(args)``, so ``runner tune X`` and
``python -m runner.tune X`` are the same command. A bad flag is one line on stderr and exit 2, like
every other input error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {  # subcommand -> (module, help)
    "tune": ("runner.driver.cli", "run a study: every variant x seed as a Ray Tune trial"),
    "evaluate": ("runner.inference.evaluate", "evaluate a study's best checkpoint on an image folder"),
    "predict": ("runner.inference.predict", "label every image under a folder with a study's best checkpoint"),
    "summary": ("runner.results.tables", "(re)write a study's summary tables from its results dir"),
    "report": ("runner.results.report", "(re)write a study's report.html from its results dir"),
}


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other input error (argparse prints usage too)
        self.exit(2, f"error: {message} ({self.prog} --help lists the flags)\n")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return OneLineParser(prog=prog, description=description)


def command(name: str, argv: list[str] | None = None) -> int:
    """``python -m runner.NAME ARGS``: one subcommand on its own (evaluate, predict, summary, report)."""
    module, help_text = COMMANDS[name]
    p = parser(f"python -m runner.{name}", help_text)
    mod = importlib.import_module(module)
    mod.add_arguments(p)
    return mod.run(p.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = parser("runner", "Run many small image-classification experiments on Ray and trust the conclusions.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv[:1] == [name]:  # only the chosen module is imported (evaluate and predict import torch)
            importlib.import_module(module).add_arguments(p)
    args = top.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
