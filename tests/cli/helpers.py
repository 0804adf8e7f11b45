"""Helpers of the command-line tests: run ``skrank`` in-process and read its errors."""

import os
import re

from skrank.cli import main


def run(capsys, *argv):
    """``skrank ARGV`` in-process: (exit status, stdout, stderr)."""
    rc = main([os.fspath(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, command, *needles):
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"skrank {command}: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# What only Python code calls things: a parameter's keyword, its name, None, X and y.
def python_spellings(line: str) -> list:
    from skrank._estimator.params import PARAMETERS

    single, double = r"'(?:[^'\\]|\\.)*'", r'"(?:[^"\\]|\\.)*"'
    plain = re.sub(rf"(?<![\w'\"])(?:{single}|{double})", "''", line)
    names = sorted(set(PARAMETERS) | {"target_column", "on_error"})
    found = [f"{n}=" for n in names if re.search(rf"(?<![\w-]){n}=", plain)]
    found += [n for n in names if "_" in n and n in plain]
    found += re.findall(r"(?<![\w./-])(?:None|X|y)(?![\w/-])", plain)
    return found
