"""The command line's vocabulary.

:func:`check_options` makes argparse check every option that sets a CLIPRanker
parameter by the estimator's own table, and :class:`Vocabulary` rewrites the
library's messages (``batch_size=1``, ``y``) in the words of the command that
ran (``--batch-size 1``, ``--target-column 'age'``).
"""

from __future__ import annotations

import argparse
import re

from skrank._quote import shown

# What the library calls its inputs, and the option of a command that gives them.
ALIASES = {"X": "image_column", "y": "target_column"}
# ... and what to call them where the command was given no such column.
ALIAS_WORDS = {"X": "the image list", "y": "the target column"}
# What an option accepts, where the parameter table's words are Python's.
EXPECTED = {
    "random_state": "an integer in [0, 4294967295]",
    "pretrained": "an open_clip tag, a checkpoint file or 'none'",
}
# A command whose option spells a parameter's None (fit: --pretrained none) says so with
# parser.set_defaults(none_words={"pretrained": "none"}); the library's phrases that
# offer that None are then reworded too.
PHRASES = {"pretrained": {"or None for random weights": "or {none} for random weights"}}


def options(parser) -> dict:
    """``{dest: action}`` for each option of ``parser`` that takes a value (not ``--help``)."""
    return {
        a.dest: a
        for a in parser._actions  # argparse has no public list of a parser's actions
        if a.option_strings and a.nargs != 0 and a.dest != "help"
    }


def long_option(action) -> str:
    """An action's long spelling, ``--batch-size`` (its first, if it has no long one)."""
    return next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])


def checked_by_table(dest: str) -> bool:
    """Whether an option's value is a CLIPRanker parameter or a column name."""
    from skrank._estimator.params import PARAMETERS

    return dest in PARAMETERS or dest.endswith("_column")


def check_options(parser) -> None:
    """Make ``parser`` check each parameter option by the parameter table as it parses.

    The table is ``skrank._estimator.params.PARAMETERS``.

    Every option whose destination is a CLIPRanker parameter (``--batch-size``
    sets ``batch_size``), and every ``--*-column``, gets a ``type`` that converts
    as before and then refuses what the estimator would refuse, so the error
    names the option (``argument --batch-size: '1' is not valid; expected an
    integer >= 2 ...``) and comes before any file is read. None is what an option
    left out means, so it is never offered; an empty value is refused.

    The table is read when the first value is converted, not here: it imports
    torch, which a command's ``--help`` has no use for. Until then every option
    that takes a value holds a ``type`` that decides on its first call whether
    the table checks it, and otherwise converts as before.
    """
    for dest, action in options(parser).items():
        if not getattr(action.type, "checked_by_table", False):
            action.type = _lazy_type(dest, action.type)


def _lazy_type(dest: str, convert):
    """``convert`` (``None``: the text as it is), checked by the table if ``dest`` is in it."""
    resolved = None

    def parse(text: str):
        nonlocal resolved
        if resolved is None:
            resolved = _table_type(dest, convert) if checked_by_table(dest) else convert or str
        return resolved(text)

    parse.checked_by_table = True
    parse.__name__ = getattr(convert, "__name__", "str")  # argparse names a type in messages
    return parse


def _table_type(dest: str, convert):
    from skrank._estimator.params import NONE, PARAMETERS

    constraints = [c for c in PARAMETERS.get(dest, ()) if c is not NONE]
    if dest in EXPECTED:
        expected = EXPECTED[dest]
    elif dest.endswith("_column"):
        expected = "a column name"
    else:
        expected = " or ".join(map(str, constraints))

    def parse(text: str):
        if text == "":
            raise argparse.ArgumentTypeError(f"is empty; expected {expected}")
        try:
            value = text if convert is None else convert(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{shown(text)} is not {expected}") from None
        if constraints and not any(c.accepts(value) for c in constraints):
            raise argparse.ArgumentTypeError(f"{shown(text)} is not valid; expected {expected}")
        return value

    parse.checked_by_table = True
    parse.__name__ = getattr(convert, "__name__", "str")  # argparse names a type in messages
    return parse


# A quoted value (a repr: a user's text, a path); a quote after a letter is an apostrophe.
_SINGLE = r"'(?:[^'\\\n]|\\.)*'"
_DOUBLE = r'"(?:[^"\\\n]|\\.)*"'
_QUOTED = rf"(?<![\w'\"]){_SINGLE}|(?<![\w'\"]){_DOUBLE}"
_VALUE = rf"{_SINGLE}|{_DOUBLE}|[^\s,;:()\[\]]+"
_TYPE = r" \((?:int|float|str|bool|NoneType|list|tuple|dict)\)"
# A name is a word of its own: not part of a longer name, an option or a path ('/x/y/a.png').
_BEFORE = r"(?<![\w.\-/\\])"
_AFTER = r"(?![\w\-/\\]|\.\w)"


class Vocabulary:
    """The library's messages in the words of one command's options.

    Built from the command's parser, so an option added to a command is known
    here without another list. Outside quoted text (a user's value, a path),
    ``name=value (type)`` of a parameter or column the command has an option
    for becomes ``--option value``, ``name=None`` becomes ``no --option`` (or
    ``--pretrained none`` where the command spells None so), a bare
    ``batch_size`` or ``lr`` becomes the option, ``X`` and ``y`` become
    ``--image-column 'file'`` and ``--target-column 'age'``, and a parameter the
    command has no option for is the model's (``the model's device 'cuda'``)
    or, for ``fit``, the ranker's.
    """

    def __init__(self, parser, args=None, owner: str = "model"):
        from skrank._estimator.params import PARAMETERS

        self.args = args
        self.owner = owner
        self.none_words = parser.get_default("none_words") or {}
        self.flags = {dest: long_option(a) for dest, a in options(parser).items()}
        self.names = sorted(set(PARAMETERS) | set(self.flags) | set(ALIASES), key=len)[::-1]
        names = "|".join(map(re.escape, self.names))
        bare = [n for n in self.flags if "_" in n or n == "lr"] + list(ALIASES)
        bare = "|".join(map(re.escape, sorted(bare, key=len)[::-1]))
        self.pattern = re.compile(
            rf"(?P<quoted>{_QUOTED})"
            rf"|(?P<call>\bCLIPRanker\((?P<call_args>[^()]*)\))"
            rf"|{_BEFORE}(?P<name>{names})=(?P<value>{_VALUE})?(?:{_TYPE})?"
            rf"|{_BEFORE}(?P<bare>{bare}){_AFTER}(?!=)"
        )

    def _given(self, dest: str):
        value = getattr(self.args, dest, None) if self.args is not None else None
        return value if isinstance(value, str) else None

    def _option(self, dest: str, value: str | None) -> str:
        """``dest`` (a parameter, a column or an alias) given ``value`` (its text, or None)."""
        dest = ALIASES.get(dest, dest)
        if dest not in self.flags:
            words = dest.replace("_", " ")
            value = "none" if value == "None" else value
            return f"the {self.owner}'s {words}" + (f" {value}" if value is not None else "")
        flag = self.flags[dest]
        if value == "None":
            none = self.none_words.get(dest)
            return f"{flag} {none}" if none else f"no {flag}"
        return flag if value is None else f"{flag} {value}"

    def _replace(self, m: re.Match) -> str:
        if m.group("quoted"):
            return m.group(0)
        if m.group("call"):  # CLIPRanker(backbone='x', pretrained='y'): the options to give
            return self.translate(m.group("call_args")).replace(", ", " ")
        if m.group("name"):
            return self._option(m.group("name"), m.group("value"))
        name = m.group("bare")
        if name in ALIASES:
            given = self._given(ALIASES[name])
            if given is None:
                return ALIAS_WORDS[name]
            return self._option(name, repr(given))
        return self._option(name, None)

    def translate(self, text: str) -> str:
        """``text`` with the library's names of parameters and inputs as this command's."""
        for dest, none in self.none_words.items():
            for phrase, spelled in PHRASES.get(dest, {}).items():
                text = text.replace(phrase, spelled.format(none=repr(none)))
        return self.pattern.sub(self._replace, text)
