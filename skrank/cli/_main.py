"""The ``skrank`` parser and entry point: one sub-parser per command module."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from skrank.cli import demo, evaluate, fit, predict
from skrank.cli._common import CLIError


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``skrank fit: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="skrank", description="Rank images by an instruction.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in (demo, fit, predict, evaluate):
        command.add_parser(sub)
    return p


def _one_line(text: str) -> str:
    """A message as one line: its first line, plus the first entry when a list follows."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return str(text)
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0][:-1]}; first: {lines[1]}"
    return lines[0]


def main(argv=None) -> int:
    """Run ``skrank COMMAND ...``; return the exit status (0: success)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "demo":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never downloads
    from skrank.images import ImageLoadError

    prefix = f"skrank {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():  # restores showwarning on exit
        warnings.showwarning = show_warning
        try:
            return args.func(args)
        except ImageLoadError as exc:
            hint = " (--on-error nan scores them NaN instead)" if args.command == "predict" else ""
            print(f"{prefix}: error: {_one_line(exc)}{hint}", file=sys.stderr)
            return 2
        except (CLIError, ValueError, TypeError, OSError, RuntimeError) as exc:
            print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
