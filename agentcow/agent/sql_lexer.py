"""A lexer that reads SQL text as PostgreSQL's own scanner does (``standard_conforming_strings``
on, its default): where strings, quoted identifiers, dollar quotes, comments (nested ones too)
and statements begin and end.

The guard parses with sqlglot, whose lexer is not PostgreSQL's; wherever the two would read a
text differently (a string one of them ends early, a comment the other does not see), the
server could run code the guard never saw. The guard compares both readings and refuses the
text when they differ, and it counts statements on this one, the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["word", "qident", "string", "number", "param", "op", "punct"]


@dataclass(frozen=True)
class Token:
    """One token: ``text`` is a word lowercased, a quoted identifier's or a string's value
    (escapes left as written), an operator's or punctuation's characters."""

    kind: TokenKind
    text: str
    start: int


class LexError(ValueError):
    """The text cannot be read as PostgreSQL reads it; ``code`` says why."""

    def __init__(self, code: str, message: str, start: int) -> None:
        super().__init__(message)
        self.code = code
        self.start = start


_NUMBER_TEXT = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
#: Spaces, or (1) a word, (2) a number, (3) a parenthesis, bracket or comma.
_FAST = re.compile(
    r"[ \t\n\r\f\v]+"
    r"|([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)"
    rf"|({_NUMBER_TEXT})"
    r"|([(),\[\]])"
)
_OP_CHARS = set("~!@#^&|`?+-*/%<>=")
_OP_KEEPS_SIGN = set("~!@#^&|`?%")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_NEWLINE = re.compile(r"[\n\r]")
_PARAM = re.compile(r"\$[0-9]+")


@dataclass
class Statements:
    """The tokens of the first statement, and where each further statement starts."""

    tokens: list[Token]
    further: list[int]


def _skip_comment(text: str, i: int) -> int:
    """The end of the comment starting at ``i`` (``--`` or ``/*``, nesting as PostgreSQL's)."""
    if text.startswith("--", i):
        end = _NEWLINE.search(text, i)  # \r ends it too, as in PostgreSQL
        return len(text) if end is None else end.end()
    depth, j = 0, i
    while j < len(text):
        if text.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif text.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise LexError("parse_error", "a /* comment is not closed", i)


def _quoted(text: str, i: int, quote: str, backslash: bool) -> tuple[str, int]:
    """The value and end of the literal opening at ``i`` with ``quote`` (doubled to escape;
    with ``backslash``, also escaped by a backslash as in E'...')."""
    j = i + 1
    while j < len(text):
        c = text[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if text.startswith(quote * 2, j):
                j += 2
                continue
            return text[i + 1 : j].replace(quote * 2, quote), j + 1
        j += 1
    kind = "quoted identifier" if quote == '"' else "string"
    raise LexError("parse_error", f"a {kind} is not closed", i)


def _operator(text: str, i: int) -> str:
    """PostgreSQL's operator token at ``i``: the longest run of operator characters, cut
    before a comment, without a trailing + or - unless it holds one of ~!@#^&|`?%."""
    j = i
    while j < len(text) and text[j] in _OP_CHARS:
        if j > i and (text.startswith("--", j) or text.startswith("/*", j)):
            break
        j += 1
    op = text[i:j]
    if len(op) > 1 and not (_OP_KEEPS_SIGN & set(op)):
        while len(op) > 1 and op[-1] in "+-":
            op = op[:-1]
    return op


def _opens_literal(text: str, word: re.Match[str]) -> bool:
    """Whether a word is the prefix of a literal: E'', B'', X'', N'', U&'' or U&""."""
    value, end = word.group(1), word.end()
    if value is None or len(value) != 1:
        return False
    if value in "eEbBxXnN":
        return text.startswith("'", end)
    return value in "uU" and text.startswith(("&'", '&"'), end)


def tokenize(text: str) -> Statements:
    """Every token of the first statement and where the others start (a ``;`` followed by
    more than spaces and comments). Raises :class:`LexError` on what PostgreSQL would not
    read, and on ``U&`` escapes, which the guard does not decode."""
    if "\x00" in text:
        raise LexError("parse_error", "the text holds a NUL character", text.index("\x00"))
    tokens: list[Token] = []
    further: list[int] = []
    target = tokens
    after_semicolon = False
    i = 0
    while i < len(text):
        fast = _FAST.match(text, i)
        if fast is not None and fast.lastindex is None:  # spaces
            i = fast.end()
            continue
        c = text[i]
        if c in "-/" and (text.startswith("--", i) or text.startswith("/*", i)):
            i = _skip_comment(text, i)
            continue
        if after_semicolon and c != ";":
            further.append(i)
            after_semicolon = False
            target = []
        start = i
        if c == ";":
            after_semicolon = True
            i += 1
            continue
        if fast is not None and not _opens_literal(text, fast):
            kind: TokenKind = ("word", "number", "punct")[fast.lastindex - 1]  # type: ignore[operator]
            value = fast.group()
            target.append(Token(kind, value.lower() if kind == "word" else value, start))
            i = fast.end()
            continue
        if c in "uU" and text.startswith(("&'", '&"'), i + 1):
            raise LexError(
                "unicode_escape", "U& escapes in strings and identifiers are not accepted", i
            )
        if c in "eEbBxXnN" and text[i + 1 : i + 2] == "'":
            value, i = _quoted(text, i + 1, "'", backslash=c in "eE")
            target.append(Token("string", value, start))
        elif c == "'":
            value, i = _quoted(text, i, "'", backslash=False)
            target.append(Token("string", value, start))
        elif c == '"':
            value, i = _quoted(text, i, '"', backslash=False)
            if value == "":
                raise LexError("parse_error", 'an empty quoted identifier ("")', start)
            target.append(Token("qident", value, start))
        elif c == "$":
            param = _PARAM.match(text, i)
            tag = _DOLLAR_TAG.match(text, i)
            if param is not None:
                target.append(Token("param", param.group(), start))
                i = param.end()
            elif tag is not None:
                end = text.find(tag.group(), tag.end())
                if end < 0:
                    raise LexError("parse_error", "a dollar-quoted string is not closed", i)
                target.append(Token("string", text[tag.end() : end], start))
                i = end + len(tag.group())
            else:
                raise LexError("parse_error", "a lone $ sign", i)
        elif c in _OP_CHARS:
            op = _operator(text, i)
            target.append(Token("op", op, start))
            i += len(op)
        elif c == ":" and text[i + 1 : i + 2] in (":", "="):
            target.append(Token("punct", text[i : i + 2], start))
            i += 2
        else:
            target.append(Token("punct", c, start))
            i += 1
    return Statements(tokens, further)
