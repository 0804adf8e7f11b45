"""The ``skrank`` command line.

``skrank COMMAND ...`` (or ``python -m skrank.cli COMMAND ...``) runs one of the
commands ``demo``, ``fit``, ``predict`` and ``evaluate``, each defined, parser
and all, in the module of its name; :mod:`skrank.cli._common` holds what several
of them share.
"""

from skrank.cli._common import CLIError as CLIError
from skrank.cli._main import _parser as _parser
from skrank.cli._main import main
from skrank.cli.fit import FIT_DEFAULTS as FIT_DEFAULTS

__all__ = ["main"]
