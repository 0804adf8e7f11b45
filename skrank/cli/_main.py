"""The ``skrank`` parser and entry point: one sub-parser per command module."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings

from skrank._quote import shown
from skrank._version import __version__
from skrank.cli._common import COMMANDS, CLIError, UnreadableImages, flush_stdout, torch_threads
from skrank.cli._words import Vocabulary, check_options


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: ``skrank fit: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser(commands=tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The ``skrank`` parser; its ``commands`` maps each command built in full to its sub-parser.

    Each command named in ``commands`` (all by default) gets its full sub-parser, from
    its module ``skrank.cli.<name>``, imported here; every other command gets a
    stub that carries only its line of ``skrank --help``, so that ``skrank
    --version``, ``skrank --help`` and a command's ``--help`` import neither torch
    nor scikit-learn (seconds), nor the other commands. Every option of a full
    sub-parser that sets a CLIPRanker parameter or names a column is checked by
    the parameter table as it is parsed (``check_options``).
    """

    p = _Parser(prog="skrank", description="Rank images by an instruction.")
    p.add_argument("--version", action="version", version=f"skrank {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if name in commands:
            importlib.import_module(f"skrank.cli.{name}").add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    p.commands = {name: sub.choices[name] for name in commands}
    for command_parser in p.commands.values():
        check_options(command_parser)
    return p


def _command(argv: list[str]) -> tuple[str, ...]:
    """The command ``argv`` names, as a tuple of its name, or ``()`` where it names none.

    ``skrank`` has no option that takes a value, so the first argument that is
    not an option is the command (or a word argparse will refuse).
    """
    for arg in argv:
        if arg == "--":
            break
        if not arg.startswith("-"):
            return (arg,) if arg in COMMANDS else ()
    return ()


def _one_line(text: str) -> str:
    """A message as one line: its first line, plus the first entry when a list follows."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0][:-1]}; first: {lines[1]}"
    return lines[0]


def _failure_line(exc: BaseException) -> str:
    """One line saying what went wrong, with the error's type where the text needs it.

    skrank's own errors and plain ``ValueError`` / ``OSError`` messages are
    written for users; a dependency's error (``SafetensorError``, a pickle or
    zlib error) or a bare ``KeyError`` means little without its type.
    """
    from skrank._encoding.images import ImageLoadError

    if isinstance(exc, ImageLoadError) and exc.failures:
        i, path, reason = exc.failures[0]
        where = f" {shown(path)}" if path else ""  # repr: a path may hold a newline
        more = f" (and {len(exc.failures) - 1} more)" if len(exc.failures) > 1 else ""
        return (
            f"{len(exc.failures)} image(s) could not be read; first: [{i}]{where}: {reason}{more}"
        )
    text = _one_line(exc)
    module = type(exc).__module__.split(".")[0]
    plain = module in ("skrank", "builtins") and not isinstance(exc, LookupError)
    if not text.strip() or not plain:
        text = f"{type(exc).__name__}: {text}" if text.strip() else type(exc).__name__
    return text


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that bad input, files or settings cause: exit status 2."""
    errors: list[type[BaseException]] = [
        CLIError,
        ValueError,  # pandas' ParserError and EmptyDataError, UnicodeDecodeError, ...
        TypeError,  # InvalidParameterError is both
        OSError,  # files, folders, PIL's UnidentifiedImageError, a full disk
        RuntimeError,  # WeightsUnavailableError, torch's errors on a bad checkpoint
        ArithmeticError,  # TrainingDivergedError (a FloatingPointError)
        EOFError,  # torch.load of a truncated checkpoint
    ]
    for module, name in (
        ("safetensors", "SafetensorError"),
        ("pickle", "UnpicklingError"),
        ("zlib", "error"),
        ("PIL.Image", "DecompressionBombError"),
    ):
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            errors.append(found)
    return tuple(errors)


def main(argv=None) -> int:
    """Run ``skrank COMMAND ...``; return the exit status.

    0: success; 2: a usage error or an error in the input, the files or the
    settings (a closed or full standard output among them); 1: an unexpected
    error; 130: interrupted (Ctrl-C); 143: terminated (SIGTERM), cleaned up as
    after Ctrl-C. Every error is one line on stderr, never a traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_command(argv))  # only the command that runs is imported
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "demo":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never downloads

    prefix = f"skrank {args.command}"
    # The library's messages in this command's words (--batch-size 1, not batch_size=1).
    owner = "ranker" if args.command in ("fit", "demo") else "model"
    words = Vocabulary(parser.commands[args.command], args, owner=owner)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {words.translate(_one_line(message))}", file=sys.stderr)

    def fail(line: str, status: int) -> int:
        # Whatever a dependency's message holds, the error stays one line.
        print(f"{prefix}: {' '.join(line.splitlines())}", file=sys.stderr)
        return status

    from skrank._encoding.images import ImageLoadError

    with warnings.catch_warnings(), _sigterm_as_interrupt():  # both restored on exit
        warnings.showwarning = show_warning
        try:
            with torch_threads(getattr(args, "threads", None)):  # fit, predict, evaluate, demo
                status = args.func(args)
            flush_stdout()  # a failed write (a full disk) is not a success
            return status
        except Terminated:
            return fail("terminated", 143)
        except KeyboardInterrupt:
            return fail("interrupted", 130)
        except MemoryError:
            return fail("error: out of memory; use fewer images or a smaller --batch-size", 1)
        except BrokenPipeError:  # `skrank predict ... --out - | head`: the reader left
            _silence_stdout()
            return 1
        except Exception as exc:
            hint = ""
            if args.command == "predict" and isinstance(exc, (ImageLoadError, UnreadableImages)):
                hint = " (--on-error nan scores them NaN instead)"
            status = 2 if isinstance(exc, _user_errors()) else 1
            line = _failure_line(exc)
            if not isinstance(exc, CLIError):  # CLIError is written in the command's words
                line = words.translate(line)
            return fail(f"error: {line}{hint}", status)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as after Ctrl-C.

    A ``KeyboardInterrupt``: every cleanup that Ctrl-C runs (the temporary of
    an atomic write removed, a fit left as it was) runs for it too.
    """


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # None: a handler installed from outside Python, which cannot be put back.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured in tests): nothing to flush
        pass
