"""A strict reader of the plain block YAML that kubectl and this project write, and no more.

Importing PyYAML costs a listing more than its two HTTP requests: its reader compiles a regular
expression over every printable Unicode range (~57 M instructions, ~15 ms) before anything is
parsed.  The listings only need to read a kubeconfig, which kubectl, kind and this project write
in one narrow style: block mappings and sequences, one ``key: value`` per line, plain or quoted
scalars, ``{}`` and ``[]``.  :func:`load` reads exactly that style and gives what
``yaml.safe_load`` gives for it; on anything else — flow collections, anchors, tags, block or
multi-line scalars, numbers, dates, duplicate keys, tabs, several documents — it raises
:class:`Unsupported` and the caller parses the text with PyYAML, which then decides.  It never
guesses: a document it returns is one PyYAML would read the same way (tests compare the two).
"""

from __future__ import annotations

from typing import Any

_BOOLEANS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS = ("~", "null", "Null", "NULL", "")
#: First characters of a plain scalar that may make it a number, a date, a merge key, an
#: indicator or something else than a string: left to PyYAML.
_NOT_PLAIN = set("-?:,[]{}#&*!|>'\"%@`+.0123456789=<")
_ODD_SPACE = "\t\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t"}


class Unsupported(ValueError):
    """The text uses YAML beyond this reader's style: parse it with PyYAML."""


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return _double_quoted(text)
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise Unsupported("single-quoted scalar")
        return text[1:-1].replace("''", "'")
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text in _NULLS:
        return None
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if text[0] in _NOT_PLAIN or ": " in text or " #" in text or text.endswith(":") or "\t" in text:
        raise Unsupported(f"plain scalar {text[:20]!r}")
    return text


def _double_quoted(text: str) -> str:
    out: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            if i != len(text) - 1:
                raise Unsupported("text after a double-quoted scalar")
            return "".join(out)
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in _ESCAPES:
                raise Unsupported("escape sequence")
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(char)
        i += 1
    raise Unsupported("multi-line double-quoted scalar")


def _key(text: str) -> str:
    value = _scalar(text)
    if not isinstance(value, str) or not value:
        raise Unsupported("a key that is not a string")
    return value


def _split_pair(text: str) -> tuple[str, str] | None:
    """``(key, value)`` of ``key: value`` or ``key:``; None when ``text`` is not a pair."""
    if text[0] in "\"'":
        quote = text[0]
        end = text.find(quote, 1)
        while quote == "'" and end != -1 and text[end + 1 : end + 2] == "'":
            end = text.find(quote, end + 2)
        if end == -1 or "\\" in text[:end]:
            raise Unsupported("quoted key")
        rest = text[end + 1 :]
        if rest == ":" or rest.startswith(": "):
            return text[: end + 1], rest[1:].strip()
        return None
    if text.endswith(":"):
        return text[:-1].rstrip(" "), ""
    head, sep, tail = text.partition(": ")
    if not sep:
        return None
    return head.rstrip(" "), tail.strip()


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines: list[tuple[int, str]] = []
        if any(char in text for char in _ODD_SPACE):
            raise Unsupported("tab, carriage return or a Unicode line break")
        for number, line in enumerate(text.split("\n")):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if number == 0 and stripped == "---":
                continue
            if not line.isprintable():
                raise Unsupported("a character Python does not call printable")
            if stripped in ("---", "...") or stripped.startswith(("--- ", "%")):
                raise Unsupported("several documents or a directive")
            self.lines.append((len(line) - len(line.lstrip(" ")), line.rstrip(" ")))
        self.at = 0

    def node(self, indent: int) -> Any:
        """The block node at indentation ``indent`` (at least), starting at the current line."""
        if self.at >= len(self.lines):
            return None
        column, line = self.lines[self.at]
        if column < indent:
            return None
        text = line[column:]
        if text == "-" or text.startswith("- "):
            return self.sequence(column)
        if _split_pair(text) is None:
            raise Unsupported("a scalar on a line of its own")
        return self.mapping(column)

    def mapping(self, indent: int, first: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while first is not None or self.at < len(self.lines):
            if first is None:
                column, line = self.lines[self.at]
                if column < indent:
                    break
                if column > indent:
                    raise Unsupported("unexpected indentation")
                text = line[column:]
                if text == "-" or text.startswith("- "):
                    if result:
                        raise Unsupported("a sequence item inside a mapping")
                    break
                self.at += 1
            else:
                text, first = first, None
            pair = _split_pair(text)
            if pair is None:
                raise Unsupported("a line that is not `key: value`")
            key = _key(pair[0])
            if key in result:
                raise Unsupported(f"duplicate key {key!r}")
            if pair[1]:
                result[key] = _scalar(pair[1])
                continue
            value = self.node(indent + 1)
            if value is None and self.at < len(self.lines):
                column, line = self.lines[self.at]
                if column == indent and (line[column:] == "-" or line[column:].startswith("- ")):
                    value = self.sequence(indent)  # kubectl's style: the list at the key's level
            result[key] = value
        return result

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while self.at < len(self.lines):
            column, line = self.lines[self.at]
            text = line[column:]
            if column != indent or not (text == "-" or text.startswith("- ")):
                if column > indent:
                    raise Unsupported("unexpected indentation")
                break
            self.at += 1
            item = text[1:].lstrip(" ")
            if not item:
                result.append(self.node(indent + 1))
                continue
            if item == "-" or item.startswith("- "):
                raise Unsupported("nested sequence on one line")
            if _split_pair(item) is None:
                result.append(_scalar(item))
                continue
            result.append(self.mapping(indent + len(text) - len(item), first=item))
        return result


def load(text: str) -> Any:
    """What ``yaml.safe_load(text)`` gives, for text in this reader's style; else Unsupported."""
    reader = _Reader(text)
    if not reader.lines:
        return None
    value = reader.node(0)
    if reader.at != len(reader.lines):
        raise Unsupported("text after the document")
    return value
