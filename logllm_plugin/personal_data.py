"""Personal-data masking before any text reaches an LLM, a prompt or an explanation.

Values are replaced by typed placeholders that are stable within one sequence: the same e-mail
address is `<EMAIL_1>` on every line it appears on, a second one `<EMAIL_2>`, so an explanation
can still say "the same user failed three times" without naming them. Patterns are ordered: the
first kind that matches at a position wins (a token inside a URL is a secret, not a path).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

KEEP = "KEEP"
PLACEHOLDER = r"<[A-Z]+_\d+>"
_PLACEHOLDER = re.compile(PLACEHOLDER)
# (kind, pattern). A pattern with a group named `v` masks only that group (the key stays:
# `password=<SECRET_1>`). Secrets come first: a token must not be half-masked as something else.
DEFAULT_PATTERNS: tuple[tuple[str, str], ...] = (
    # A placeholder of an earlier pass stays as it is: masking twice gives the same text (the
    # learner's history is masked once when it arrives, and `user_1`-like ids must not match
    # inside `<USER_1>`).
    (KEEP, PLACEHOLDER),
    ("SECRET", r"\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]{6,}"),  # JWT
    ("SECRET", r"(?i:\bbearer\s+)(?P<v>[\w\-.~+/=]{8,})"),
    ("SECRET", r"(?i:\b(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth)\s*[=:]\s*)"
               r"(?P<v>[^\s,;&\"')}]+)"),
    ("SECRET", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    ("SECRET", r"\b(?:sk|pk|ghp|gho|xox[bap])[-_][A-Za-z0-9_-]{16,}\b"),  # common API key prefixes
    ("EMAIL", r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}"),  # RFC 5322 local part
    ("IP", r"(?<![\w.:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"),  # full IPv6
    ("IP", r"(?<![\w.:])(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?(?![\w:])"),  # IPv6 ::
    ("IP", r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]|\.\d)"),  # IPv4
    ("USER", r"(?i:\b(?:user|uid|user_id|userid|username|login|account)\s*[=:]\s*)(?P<v>[\w.@-]+)"),
    ("USER", r"(?i:\buser[_-]\d+\b)"),
)


class PersonalDataMasker:
    def __init__(self, extra_patterns: Iterable[Sequence[str]] = ()):
        patterns = list(DEFAULT_PATTERNS)
        extra = [(str(kind).upper(), str(regex)) for kind, regex in extra_patterns]
        for kind, regex in extra:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"masking pattern for {kind} is not a valid regex: {exc}") from None
        # Config patterns go right after the secrets so site-specific ids beat generic matches.
        first_non_secret = next(i for i, (k, _) in enumerate(patterns) if k not in ("SECRET", KEEP))
        patterns[first_non_secret:first_non_secret] = extra
        self.kinds = [kind for kind, _ in patterns]
        self._has_value_group = ["(?P<v>" in regex for _, regex in patterns]
        self._pattern = re.compile("|".join(
            f"(?P<g{i}>{regex.replace('(?P<v>', f'(?P<v{i}>')})" for i, (_, regex) in enumerate(patterns)))

    def mask_sequence(self, lines: Sequence[str]) -> list[str]:
        """Mask every line; one placeholder per distinct value per kind across the sequence."""
        seen: dict[tuple[str, str], str] = {}
        counts: dict[str, int] = {}

        def replace(match: re.Match) -> str:
            index = int(match.lastgroup[1:])
            kind = self.kinds[index]
            whole = match.group(0)
            if kind == KEEP:
                return whole
            if self._has_value_group[index]:  # keep the key, mask the value
                start, end = match.span(f"v{index}")
                offset = match.start()
                prefix, value, suffix = whole[: start - offset], whole[start - offset : end - offset], whole[end - offset :]
            else:
                prefix, value, suffix = "", whole, ""
            if _PLACEHOLDER.fullmatch(value):  # `token=<SECRET_2>`: masked by an earlier pass
                return whole
            key = (kind, value)
            if key not in seen:
                counts[kind] = counts.get(kind, 0) + 1
                seen[key] = f"<{kind}_{counts[kind]}>"
            return prefix + seen[key] + suffix

        return [self._pattern.sub(replace, line) for line in lines]

    def mask(self, text: str) -> str:
        return self.mask_sequence([text])[0]

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """(kind, start, end) of every value `mask` would replace in `text`, in order."""
        out = []
        for match in self._pattern.finditer(text):
            index = int(match.lastgroup[1:])
            if self.kinds[index] == KEEP:
                continue
            start, end = match.span(f"v{index}") if self._has_value_group[index] else match.span()
            if _PLACEHOLDER.fullmatch(text, start, end):
                continue  # already a placeholder: nothing personal left to mask
            out.append((self.kinds[index], start, end))
        return out
