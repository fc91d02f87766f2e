"""keepalived.conf syntax: physical lines in, logical token lines out.

Follows keepalived's lib/parser.c order: comments are stripped, `include` is
recognised before anything else, then `@id` conditional lines, `$NAME=value`
definitions, `~SEQ`/`~LST` generators, parameter substitution, and finally
quoted tokens with `{` and `}` split out. Every logical line keeps the file and
line it was written on, the include chain that led there and, for lines a
macro produced, where and how it was expanded.

Hand-written because no library reads this format; it is small enough that
exact keepalived compatibility is easier to keep here than anywhere else.
"""

from __future__ import annotations

import glob
import os
import random
import re
from dataclasses import dataclass

from hivrrp.config.diagnostics import Diagnostics, Where
from hivrrp.util.text import plural

MAX_LINE = 65536            # longer lines are refused (keepalived's own limit is far lower)
MAX_SUBSTITUTIONS = 64      # a definition that refers to itself stops here
MAX_GENERATED = 2_000_000   # ~SEQ/~LST lines from one source line
MAX_INCLUDE_DEPTH = 32

INCLUDE_KEYWORDS = {"include", "includer", "includem", "includew", "includeb", "includea"}
DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)
REFERENCE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)(?=\s|\Z)")
GENERATOR = re.compile(r"~(SEQx?|LST)\(")


@dataclass(frozen=True, slots=True)
class Line:
    """One logical line: tokens (quotes removed, braces separate) and its origin."""

    tokens: tuple[str, ...]
    text: str           # the line after substitution, before tokenising (for scripts)
    where: Where


@dataclass(slots=True)
class _Multiline:
    """A multi-line definition: each line keeps where it was written."""

    lines: list[tuple[str, Where]]


class Reader:
    def __init__(self, diagnostics: Diagnostics, config_id: str) -> None:
        self.diag = diagnostics
        self.config_id = config_id
        self.params: dict[str, str | _Multiline] = {}
        self.include_stack: list[str] = []
        self.pwd = os.getcwd()

    # ------------------------------------------------------------- files

    def read(self, path: str) -> list[Line]:
        """All logical lines of a file and what it includes, in order."""
        out: list[Line] = []
        self._read(path, (), out)
        return out

    def _read(self, path: str, chain: tuple[tuple[str, int], ...], out: list[Line]) -> None:
        # The internals append to one list: nested generators cost a
        # frame switch per line per level, which dominated large configs.
        real = os.path.realpath(path)
        if real in self.include_stack:
            cycle = " -> ".join([*self.include_stack, real])
            # Blame the include line that closes the loop.
            (file, line), outer = chain[-1], chain[:-1]
            self.diag.error(Where(file, line, outer), f"include cycle: {cycle}")
            return
        if len(self.include_stack) >= MAX_INCLUDE_DEPTH:
            self.diag.error(Where(path, 0, chain), "includes nested too deeply")
            return
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            self.diag.error(Where(path, 0, chain), f"cannot read: {exc.strerror or exc}")
            return
        self.include_stack.append(real)
        saved_pwd, self.pwd = self.pwd, os.path.dirname(os.path.abspath(path))
        try:
            physical = raw.decode("utf-8", "replace").split("\n")
            if physical and physical[-1] == "":
                physical.pop()  # the final newline ends the last line, it starts none
            self._read_lines(path, physical, chain, out)
        finally:
            self.pwd = saved_pwd
            self.include_stack.pop()

    def _read_lines(self, path: str, physical: list[str],
                    chain: tuple[tuple[str, int], ...], out: list[Line]) -> None:
        pending: tuple[str, _Multiline] | None = None
        for number, text in enumerate(physical, 1):
            where = Where(path, number, chain)
            if len(text) > MAX_LINE:
                self.diag.error(where, f"line too long ({len(text)} characters)")
                continue
            if "\0" in text:
                self.diag.error(where, "binary data (NUL byte) in the configuration")
                continue
            text = strip_comment(text).strip()
            if pending is not None:
                # Inside a multi-line $NAME= definition: store lines as written.
                name, value = pending
                more = text.endswith("\\")
                body = text[:-1].rstrip() if more else text
                if body:
                    value.lines.append((body, where))
                if not more:
                    self.params[name] = value
                    pending = None
                continue
            if not text:
                continue
            words = text.split(None, 1)
            if words[0] in INCLUDE_KEYWORDS:
                self._include(words[0], words[1] if len(words) > 1 else "", where, out)
                continue
            definition = DEFINITION.match(text)
            if definition and definition.group(2).strip() == "\\":
                pending = (definition.group(1), _Multiline([]))
                continue
            self._logical(text, where, None, 0, out)
        if pending is not None:
            self.diag.error(Where(path, len(physical), chain),
                            f"multi-line definition of ${pending[0]} not terminated")

    def _include(self, keyword: str, pattern: str, where: Where, out: list[Line]) -> None:
        pattern = pattern.strip().strip('"')
        if not pattern:
            self.diag.error(where, f"'{keyword}' needs a file name")
            return
        base = self.pwd
        matches: list[str] = []
        for alternative in expand_braces(pattern):
            full = alternative if os.path.isabs(alternative) else os.path.join(base, alternative)
            found = sorted(glob.glob(full)) if glob.has_magic(full) else (
                [full] if os.path.exists(full) else [])
            if not found and keyword != "include":
                self.diag.error(where, f"{keyword} {alternative}: no such file")
            matches.extend(found)
        if not matches:
            if keyword == "include":
                self.diag.warning(where, f"include {pattern}: matched no file")
            return
        chain = (*where.chain, (where.file, where.line))
        for match in matches:
            self._read(match, chain, out)

    # ----------------------------------------------------- logical lines

    def _logical(self, text: str, where: Where, note: str | None, depth: int,
                 out: list[Line]) -> None:
        """Conditionals, definitions, generators and substitution for one line."""
        while True:
            if depth > MAX_SUBSTITUTIONS:
                self.diag.error(where, "parameter substitution too deep (recursive definition?)")
                return
            first = text[0]
            if first == "@":
                word, _, rest = text[1:].partition(" ")
                negate = word.startswith("^")
                if negate:
                    word = word[1:]
                if (word == self.config_id) == negate:
                    return
                text = rest.strip()
                if not text:
                    return
                first = text[0]
            if first == "$":
                definition = DEFINITION.match(text)
                if definition:
                    name, value = definition.groups()
                    self.params[name] = value.strip()
                    return
            elif first == "~":
                generator = GENERATOR.match(text)
                if generator:
                    self._generate(generator, text, where, note, depth, out)
                    return
            if "$" not in text:
                break
            whole = REFERENCE.fullmatch(text) if first == "$" else None
            if whole:
                name = whole.group(1) or whole.group(2)
                value = self.params.get(name)
                if isinstance(value, _Multiline):
                    expansion = _join(note, f"${name} expanded at {where}")
                    for line_text, line_where in value.lines:
                        self._logical(line_text, line_where, expansion, depth + 1, out)
                    return
            substituted = self._substitute(text, where)
            if substituted is None:
                return
            if substituted == text:
                break
            if "\n" in substituted:
                for piece in substituted.split("\n"):
                    piece = piece.strip()
                    if piece:
                        self._logical(piece, where, note, depth + 1, out)
                return
            # The substituted text may itself be a conditional, definition or
            # generator line: look at it again.
            text = substituted.strip()
            if not text:
                return
            depth += 1
        tokens = tokenize(text)
        if tokens:
            out.append(Line(tokens, text, where.with_note(note) if note else where))

    def _substitute(self, text: str, where: Where) -> str | None:
        def replace(match: re.Match) -> str:
            inner = match.group(1)
            if inner is None:
                name = match.group(2)
                value = self.params.get(name)
                return match.group(0) if value is None else _flat(value)
            words = inner.split()
            if not words:
                return match.group(0)
            builtin = self._builtin(words, where)
            if builtin is not None:
                return builtin
            value = self.params.get(inner)
            return match.group(0) if value is None else _flat(value)

        result = text
        for _ in range(MAX_SUBSTITUTIONS):
            following = REFERENCE.sub(replace, result)
            if following == result or "$" not in following:
                return following
            result = following
        self.diag.error(where, "parameter substitution too deep (recursive definition?)")
        return None

    def _builtin(self, words: list[str], where: Where) -> str | None:
        name = words[0]
        if name == "_PWD":
            return self.pwd
        if name == "_INSTANCE":
            return self.config_id
        if name == "_HASH":
            return "#"
        if name == "_BANG":
            return "!"
        if name == "_ENV" and len(words) == 2:
            return os.environ.get(words[1], "")
        if name == "_RANDOM" and len(words) <= 3:
            try:
                low = int(words[1]) if len(words) > 1 else 0
                high = int(words[2]) if len(words) > 2 else 32767
            except ValueError:
                self.diag.error(where, f"${{{' '.join(words)}}}: bounds must be integers")
                return ""
            return str(random.randint(min(low, high), max(low, high)))
        return None

    def _generate(self, match: re.Match, text: str, where: Where, note: str | None,
                  depth: int, out: list[Line]) -> None:
        kind = match.group(1)
        close = _closing_paren(text, match.end())
        if close < 0:
            self.diag.error(where, f"~{kind}( has no closing ')'")
            return
        spec, rest = text[match.end():close], text[close + 1:].strip()
        try:
            names, rows = (_parse_list(spec) if kind == "LST" else _parse_seq(spec, kind == "SEQx"))
        except ValueError as exc:
            self.diag.error(where, f"~{kind}({spec}): {exc}")
            return
        if len(rows) > MAX_GENERATED:
            self.diag.error(where, f"~{kind} would generate {len(rows)} lines")
            return
        saved = {name: self.params.get(name) for name in names}
        try:
            for row in rows:
                values = dict(zip(names, row, strict=True))
                self.params.update(values)
                label = ", ".join(f"{k}={v}" for k, v in values.items())
                self._logical(rest, where, _join(note, label), depth + 1, out)
        finally:
            for name, value in saved.items():
                if value is None:
                    self.params.pop(name, None)
                else:
                    self.params[name] = value


def _join(note: str | None, more: str) -> str:
    return f"{note}; {more}" if note else more


def _flat(value: str | _Multiline) -> str:
    return "\n".join(t for t, _ in value.lines) if isinstance(value, _Multiline) else value


def _closing_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            if depth == 0:
                return i
            depth -= 1
    return -1


def _parse_seq(spec: str, hexadecimal: bool) -> tuple[list[str], list[tuple[str]]]:
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) < 2 or len(parts) > 4:
        raise ValueError("expected (var, [start,] [step,] end)")
    name, numbers = parts[0], parts[1:]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"bad variable name {name!r}")
    try:
        values = [int(n, 0) for n in numbers]
    except ValueError:
        raise ValueError("start, step and end must be integers") from None
    if len(values) == 1:
        end = values[0]
        start = 1 if end > 0 else (-1 if end < 0 else 0)
        step = 1 if end >= start else -1
    elif len(values) == 2:
        start, end = values
        step = 1 if end >= start else -1
    else:
        start, step, end = values
    if step == 0:
        raise ValueError("step must not be 0")
    count = (end - start) // step + 1 if (end - start) * step >= 0 else 0
    if count > MAX_GENERATED:
        raise ValueError(f"would generate {count} lines")
    fmt = "{:x}" if hexadecimal else "{}"
    return [name], [(fmt.format(start + i * step),) for i in range(count)]


def _parse_list(spec: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """(var, v1, v2..) or ({var1, var2}, {a, b}, {c, d}..)."""
    items, depth, last = [], 0, 0
    for i, c in enumerate(spec + ","):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(spec[last:i].strip())
            last = i + 1
    if depth != 0:
        raise ValueError("unbalanced { }")
    groups = [[v.strip() for v in item[1:-1].split(",")]
              if item.startswith("{") and item.endswith("}") else [item] for item in items]
    if len(groups) < 2:
        raise ValueError("expected (var, value, ...)")
    names, rows = groups[0], groups[1:]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"bad variable name {name!r}")
    for values in rows:
        if len(values) != len(names):
            raise ValueError(f"{plural(len(names), 'variable')} but "
                             f"{plural(len(values), 'value')} in "
                             f"{{{', '.join(values)}}}")
    return names, [tuple(values) for values in rows]


def strip_comment(text: str) -> str:
    """Cut at the first '#' or '!' outside double quotes; '\\#' and '\\!' are literal."""
    if "#" not in text and "!" not in text:
        return text
    out, quoted, i = [], False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "#!" and not quoted:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#!" and not quoted:
            break
        out.append(c)
        i += 1
    return "".join(out)


SIMPLE_TOKENS = re.compile(r"[{}]|[^\s{}]+")


def tokenize(text: str) -> tuple[str, ...]:
    """Whitespace-separated words; "..." groups (adjacent text joins); { } apart."""
    if '"' not in text and "${" not in text:
        if "{" not in text and "}" not in text:
            return tuple(text.split())
        return tuple(SIMPLE_TOKENS.findall(text))
    tokens: list[str] = []
    current: list[str] = []
    started = quoted = False
    reference = False  # inside an unresolved ${...}, which stays part of its word
    for i, c in enumerate(text):
        if reference:
            current.append(c)
            reference = c != "}"
        elif c == "$" and not quoted and text.startswith("${", i):
            current.append(c)
            started = reference = True
        elif quoted:
            if c == '"':
                quoted = False
            else:
                current.append(c)
        elif c == '"':
            quoted = started = True
        elif c.isspace() or c in "{}":
            if started:
                tokens.append("".join(current))
                current, started = [], False
            if c in "{}":
                tokens.append(c)
        else:
            current.append(c)
            started = True
    if started:
        tokens.append("".join(current))
    return tuple(tokens)


def expand_braces(pattern: str) -> list[str]:
    """csh-style {a,b} alternatives, nested ("{foo/{,cat,dog},bar}"), as glob(3) does."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        if pattern[end] == "{":
            depth += 1
        elif pattern[end] == "}":
            depth -= 1
            if depth == 0:
                break
    else:
        return [pattern]
    inner, parts, depth, last = pattern[start + 1:end], [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[last:i])
            last = i + 1
    parts.append(inner[last:])
    head, tail = pattern[:start], pattern[end + 1:]
    return [expanded for part in parts for expanded in expand_braces(head + part + tail)]
