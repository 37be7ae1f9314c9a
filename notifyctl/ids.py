"""Ids as operators type them: the whole id, or a unique prefix of 8 or more characters.

The same rule for every id a command takes (notification ids, EventsDLQ message ids, webhook
subscription ids): an exact match wins; otherwise the prefix must be at least
``MIN_PREFIX`` characters and match exactly one known id. An unknown, too short or ambiguous
id is an ``OperationError`` (exit code 1) that names it. User ids are not resolved: they are
the producer's own keys, and ``preferences set`` creates a user that does not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from notifyctl.errors import OperationError

MIN_PREFIX = 8
SHOWN_MATCHES = 3


def resolve(given: str, known: Iterable[str], what: str) -> str:
    """The one id of ``known`` that ``given`` is, or starts (8+ characters)."""
    candidates = set(known)
    if given in candidates:
        return given
    if len(given) < MIN_PREFIX:
        raise OperationError(
            f"no {what} {given!r} (an id prefix needs at least {MIN_PREFIX} characters)"
        )
    matches = sorted(k for k in candidates if k.startswith(given))
    if not matches:
        raise OperationError(f"no {what} {given!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_MATCHES]) + (", ..." if len(matches) > 3 else "")
        raise OperationError(
            f"{what} prefix {given!r} is ambiguous: it matches {len(matches)} ({shown});"
            " give more characters"
        )
    return matches[0]


def resolve_all(given: Iterable[str], known: Iterable[str], what: str) -> list[str]:
    """Each of ``given`` resolved, in order and without repeats; the first failure raises."""
    candidates = set(known)
    resolved: list[str] = []
    for value in given:
        one = resolve(value, candidates, what)
        if one not in resolved:
            resolved.append(one)
    return resolved
