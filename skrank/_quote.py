"""Quoting user data in messages, short: a message never repeats megabytes of input.

Every error or warning that quotes a value it was given (a CSV cell, a column
name, a path, a parameter's value) quotes it through :func:`shown`, which keeps
at most about :data:`MAX_SHOWN` characters and says how long the value was: a
200 MB CSV cell must not become a 200 MB line on a terminal (and a few GB of
memory on the way).
"""

from __future__ import annotations

import reprlib

__all__ = ["MAX_SHOWN", "shown"]

MAX_SHOWN = 200

# Containers (a header of a million names) are cut by count as well as by length.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20
_REPR.maxlevel = 3


def shown(value, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, or for a long one its start and how long it was.

    Parameters
    ----------
    value : object
        What the message quotes; strings and bytes are cut before ``repr``,
        so quoting a huge one costs no more than quoting a short one.
    limit : int, default=MAX_SHOWN
        About how many characters of ``value`` are kept.

    Returns
    -------
    str
        ``'abc'``, or ``'abcd...'... (5000000 characters)``.

    Examples
    --------
    >>> from skrank._quote import shown
    >>> shown("x" * 10_000, limit=5)
    "'xxxxx'... (10000 characters)"
    >>> shown(3.5)
    '3.5'
    """
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}... ({len(value)} {unit})"
    text = _REPR.repr(value)
    return text if len(text) <= 2 * limit else f"{text[:limit]}... ({type(value).__name__})"
