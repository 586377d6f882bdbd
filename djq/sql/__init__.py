"""djq's SQL, kept as SQL: named statements and versioned server-side functions.

* ``djq/sql/*.sql`` hold named statements, each introduced by a ``-- name: NAME`` line
  (Procrastinate's ``queries.sql`` layout). ``query(NAME)`` returns one statement's text.
  Names are unique across the files. A statement names the queue's constants instead of
  writing their values: ``{DONE}`` (a :class:`djq.status.Status` number),
  ``{ENQUEUE_CHANNEL}`` and the other names of :mod:`djq.status`, ``{states.FAILURE}`` (a
  Celery state of :mod:`djq.states`); ``query`` fills them in, and refuses a name it does
  not know. A piece several statements share is a named block of its own, put in place
  by ``{query:NAME}``.
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

from .. import states, status

_NAME = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)
# {DONE}, {ENQUEUE_CHANNEL}, {states.FAILURE}: upper case only, so that a JSON path such as
# '{key}' or an array literal '{}' is left alone.
_CONSTANT = re.compile(r"\{((?:states\.)?[A-Z][A-Z0-9_]*)\}")
_TRAILING_COMMENTS = re.compile(r"(\n[ \t]*(--[^\n]*)?)+\s*\Z")
_LEADING_COMMENTS = re.compile(r"\A(\s*--[^\n]*\n)+\s*")
_INCLUDE = re.compile(r"\{query:([A-Za-z_][A-Za-z0-9_]*)\}")


@functools.cache
def _constants() -> dict[str, str]:
    """What a statement may name: the row status numbers, the other names of
    :mod:`djq.status`, and the Celery states as ``states.NAME``."""
    found = {s.name: str(int(s)) for s in status.Status}
    for module, prefix in ((status, ""), (states, "states.")):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, str | int) and not isinstance(value, status.Status):
                found[prefix + name] = str(value)
    return found


def _fill(statement: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        try:
            return _constants()[match.group(1)]
        except KeyError:
            raise ValueError(f"{where}: no constant named {match.group(1)!r}") from None

    return _CONSTANT.sub(value, statement)


def _split(text: str, source: str) -> dict[str, str]:
    """The named blocks of one file: ``{name: statement}``, comments and blanks trimmed."""
    pieces = _NAME.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(pieces[1::2], pieces[2::2]):
        if name in blocks:
            raise ValueError(f"{source}: the statement {name!r} is named twice")
        # A section's heading comment, after the block before it, is not part of it.
        statement = _TRAILING_COMMENTS.sub("", body).strip()
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
                raise ValueError(
                    f"{entry.name}: the statement {name!r} is named in another file too")
            found[name] = statement
    return {name: _fill(_included(found, name, ()), name) for name in found}


def _included(found: dict[str, str], name: str, outer: tuple[str, ...]) -> str:
    """``found[name]`` with the blocks it includes (``{query:NAME}``) put in place."""
    if name in outer:
        raise ValueError(f"djq/sql: the statement {name!r} includes itself")
    if name not in found:
        raise ValueError(f"djq/sql: {outer[-1]!r} includes {name!r}, which is not a statement")
    text = found[name]
    if outer:  # an included block goes in without its heading comment
        text = _LEADING_COMMENTS.sub("", text)
    return _INCLUDE.sub(lambda m: _included(found, m.group(1), (*outer, name)), text)


def query(name: str) -> str:
    """The text of the named statement ``name`` from ``djq/sql/*.sql``, its constants
    filled in."""
    try:
        return _statements()[name]
    except KeyError:
        raise KeyError(f"djq/sql has no statement named {name!r}") from None


@functools.cache
def function(name: str) -> str:
    """The text of ``djq/sql/functions/<name>.sql``: one versioned function, frozen once
    released."""
    entry = resources.files(__name__).joinpath("functions", f"{name}.sql")
    if not entry.is_file():
        raise KeyError(f"djq/sql/functions has no file {name}.sql")
    return entry.read_text(encoding="utf-8")
