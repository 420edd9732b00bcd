"""Where every reader starts: lines from a file or stdin, decoded one by one, and the report that
accounts for each of them.

Files are read as bytes and decoded per line (errors="replace"): one bad byte costs one character,
not the file. Fatal problems raise `InputError` with a user-ready message.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

logger = logging.getLogger("logllm_plugin.readers")

PathLike = Union[str, Path]
DEFAULT_MAX_LINE_CHARS = 64 * 1024  # far above any real log line, far below a runaway blob
MAX_PROBLEMS = 20
MALFORMED = object()  # what parse_json_counted returns for a line it counted as malformed
BOM = b"\xef\xbb\xbf"


class InputError(Exception):
    """A problem with the input as a whole; the message is meant for the user as is."""


def loads_json(text: str) -> Any:
    """json.loads, with nesting too deep for the parser reported as ValueError like any bad JSON.

    json raises RecursionError (not ValueError) for `[[[[...` a few thousand levels deep; one
    hostile line must be a counted malformed line, not a traceback.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps_json(value: Any) -> str:
    """json.dumps for a value that came from loads_json (so it is JSON), tolerating deep nesting."""
    try:
        return json.dumps(value)
    except RecursionError:
        return repr(value)[:DEFAULT_MAX_LINE_CHARS]


@dataclass
class ReadReport:
    """What a reader saw; every input line is accounted for in these counters."""

    fmt: Optional[str] = None
    lines_read: int = 0  # physical input lines, empty ones included
    records: int = 0
    sequences: int = 0
    skipped_empty: int = 0
    skipped_malformed: int = 0
    invalid_utf8_lines: int = 0  # decoded with U+FFFD replacements and kept
    long_lines: int = 0  # log lines over max_line_chars, kept whole
    unmatched_regex: int = 0  # text lines kept whole because line_regex did not match
    bad_timestamps: int = 0  # timestamp present but unparseable; record kept with None
    bad_labels: int = 0  # label present but not 0/1-like; kept as unlabeled
    problems: list[str] = field(default_factory=list)
    problems_dropped: int = 0

    def problem(self, message: str) -> None:
        # Cap the list: a file of a million bad lines must not hold a million messages.
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.problems_dropped += 1
        logger.debug("input problem: %s", message)

    def summary(self) -> str:
        parts = [f"read {self.lines_read} lines ({self.fmt or 'unknown format'})"]
        parts += [
            f"{name.replace('_', ' ')}: {value}"
            for name in ("records", "sequences", "skipped_empty", "skipped_malformed",
                         "invalid_utf8_lines", "long_lines", "unmatched_regex", "bad_timestamps",
                         "bad_labels")
            if (value := getattr(self, name))
        ]
        if self.problems:
            more = f" (+{self.problems_dropped} more)" if self.problems_dropped else ""
            parts.append(f"first problem: {self.problems[0]}{more}")
        return "; ".join(parts)


class LineSource:
    """(1-based line number, decoded text) pairs from a file or stdin, with sniffed lines replayed.

    stdin cannot be reopened, so lines read while sniffing are kept and handed out again.
    """

    _stdin_pushback: list[bytes] = []  # process-wide: stdin itself is process-wide

    def __init__(self, path: PathLike) -> None:
        self.path = str(path)
        self.is_stdin = self.path == "-"
        self.stem = "stdin" if self.is_stdin else Path(self.path).stem
        if not self.is_stdin and not Path(self.path).exists():
            raise InputError(f"{self.path}: no such file")
        if not self.is_stdin and Path(self.path).is_dir():
            raise InputError(f"{self.path}: is a directory, expected a log file")

    def _open(self) -> IO[bytes]:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc

    def raw(self) -> Iterator[bytes]:
        if not self.is_stdin:
            with self._open() as fh:
                yield from fh
            return
        pushed, LineSource._stdin_pushback = LineSource._stdin_pushback, []
        yield from pushed
        yield from sys.stdin.buffer

    def sniff(self, n: int) -> list[bytes]:
        """The first n non-empty raw lines, without consuming them."""
        if not self.is_stdin:
            with self._open() as fh:
                return list(islice((raw for raw in fh if raw.strip()), n))
        seen = LineSource._stdin_pushback
        while sum(1 for raw in seen if raw.strip()) < n:
            raw = sys.stdin.buffer.readline()
            if not raw:
                break
            seen.append(raw)
        return [raw for raw in seen if raw.strip()][:n]


def decode_line(raw: bytes, lineno: int, report: ReadReport) -> str:
    raw = raw.rstrip(b"\r\n")
    if lineno == 1:
        raw = raw.removeprefix(BOM)  # editors on Windows write one; JSON parsers reject it
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.invalid_utf8_lines += 1
        report.problem(f"line {lineno}: invalid UTF-8 at byte {exc.start}, replaced")
        return raw.decode("utf-8", errors="replace")


def numbered_lines(lines: LineSource, report: ReadReport) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(lines.raw(), start=1):
        report.lines_read += 1
        yield lineno, decode_line(raw, lineno, report)


def finish(report: ReadReport, path: str, produced: int) -> None:
    if produced == 0:
        raise InputError(
            f"{path} contains no log lines ({report.lines_read} lines read, "
            f"{report.skipped_empty} empty, {report.skipped_malformed} malformed)"
            + (f"; first problem: {report.problems[0]}" if report.problems else "")
        )
    logger.info("%s: %s", path, report.summary())


def parse_json_counted(text: str, where: str, report: ReadReport) -> Any:
    try:
        return loads_json(text)
    except ValueError as exc:
        report.skipped_malformed += 1
        report.problem(f"{where}: malformed JSON: {exc}")
        return MALFORMED


def count_long(text: str, max_line_chars: int, where: str, report: ReadReport) -> None:
    if len(text) > max_line_chars:
        report.long_lines += 1
        report.problem(f"{where}: long line ({len(text)} chars), kept whole")


def compile_regex(pattern: Optional[str], name: str) -> Optional[re.Pattern[str]]:
    try:
        return None if pattern is None else re.compile(pattern)
    except re.error as exc:
        raise InputError(f"{name} {pattern!r} is not a valid regular expression: {exc}") from exc
