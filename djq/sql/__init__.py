"""djq's SQL, kept as SQL: named statements and versioned server-side functions.

* ``djq/sql/*.sql`` hold named statements, each introduced by a ``-- name: NAME`` line
  (Procrastinate's ``queries.sql`` layout). ``query(NAME)`` returns one statement's text.
  Names are unique across the files.
* ``djq/sql/functions/NAME.sql`` holds one versioned server-side function (or trigger)
  per file, e.g. ``djq_cycle_v2.sql``. ``function(NAME)`` returns its text; migrations
  create the functions from these files. A released file is never edited: a change is a
  new version in a new file and a new migration, so an old migration still creates
  exactly what it created when it shipped.

``djq.broker`` is the one caller of the queue statements; the read side and migrations
use this module for theirs.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


def _split(text: str, source: str) -> dict[str, str]:
    """The named blocks of one file: ``{name: statement}``, comments and blanks trimmed."""
    pieces = _NAME.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(pieces[1::2], pieces[2::2]):
        if name in blocks:
            raise ValueError(f"{source}: the statement {name!r} is named twice")
        statement = body.strip()
        if not statement:
            raise ValueError(f"{source}: the statement {name!r} is empty")
        blocks[name] = statement
    return blocks


@functools.cache
def _statements() -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, statement in _split(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in found:
                raise ValueError(f"{entry.name}: the statement {name!r} is named in another file too")
            found[name] = statement
    return found


def query(name: str) -> str:
    """The text of the named statement ``name`` from ``djq/sql/*.sql``."""
    try:
        return _statements()[name]
    except KeyError:
        raise KeyError(f"djq/sql has no statement named {name!r}") from None


@functools.cache
def function(name: str) -> str:
    """The text of ``djq/sql/functions/<name>.sql``: one versioned function, frozen once released."""
    entry = resources.files(__name__).joinpath("functions", f"{name}.sql")
    if not entry.is_file():
        raise KeyError(f"djq/sql/functions has no file {name}.sql")
    return entry.read_text(encoding="utf-8")
