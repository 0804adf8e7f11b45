"""The ``skrank`` command line.

``skrank COMMAND ...`` (or ``python -m skrank.cli COMMAND ...``) runs one of the
commands ``demo``, ``fit``, ``predict`` and ``evaluate``, each defined, parser
and all, in the module of its name, which is imported only when its command
runs; :mod:`skrank.cli._common` holds what several of them share.
"""

from skrank.cli._common import CLIError as CLIError
from skrank.cli._main import _parser as _parser
from skrank.cli._main import main

__all__ = ["main"]
