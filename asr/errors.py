"""Helpers for the one-line error messages every module gives."""

from __future__ import annotations


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    for line in str(e).splitlines():
        if line.strip():
            return line.strip()
    return type(e).__name__
