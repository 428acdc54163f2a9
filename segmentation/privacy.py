"""Personal-data scrubbing for free text, on by default before text reaches a model, a cache or a report.

Detected values are replaced by typed placeholders: ``[EMAIL]``, ``[IBAN]``, ``[CARD]`` (only digit runs
that pass the Luhn check, so order numbers survive), ``[PHONE]``, and ``[NAME]`` for the values of
configured name columns (a customer's own name inside their own messages). The order matters: IBANs and
cards are found before phone numbers, whose pattern would otherwise swallow them.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d(?:[\s().-]{0,2}\d){8,14}(?!\d)")  # 9+ digits: not dates

RULES = ("email", "iban", "card", "phone", "name")
_HAS_DIGIT = re.compile(r"\d").search


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


@dataclass
class ScrubReport:
    """What a scrubbing pass replaced, by rule (kept in run directories as evidence)."""

    rules: tuple[str, ...] = RULES
    replaced: Counter = field(default_factory=Counter)
    texts: int = 0

    def as_dict(self) -> dict:
        return {"rules": list(self.rules), "texts": self.texts, "replaced": dict(self.replaced)}


@functools.lru_cache(maxsize=65536)
def _name_pattern(part: str) -> re.Pattern:
    return re.compile(rf"\b{re.escape(part)}\b", re.IGNORECASE)


class PiiScrubber:
    """Replace personal data in text by placeholders. Callable on one text, ``scrub_many`` for a column."""

    def __init__(self, rules: Sequence[str] = RULES):
        unknown = set(rules) - set(RULES)
        if unknown:
            raise ValueError(f"unknown scrubbing rules {sorted(unknown)}; known: {list(RULES)}")
        self.rules = tuple(r for r in RULES if r in rules)
        self.report = ScrubReport(rules=self.rules)

    def _sub(self, pattern: re.Pattern, placeholder: str, rule: str, text: str, check=None) -> str:
        def replace(match: re.Match) -> str:
            if check is not None and not check(match.group(0)):
                return match.group(0)
            self.report.replaced[rule] += 1
            return placeholder

        return pattern.sub(replace, text)

    def __call__(self, text: str, names: Iterable[str] = ()) -> str:
        if not isinstance(text, str) or not text:
            return text
        self.report.texts += 1
        # Cheap tests first: most customer texts hold no "@" and no digit, and millions of them pass here.
        if "email" in self.rules and "@" in text:
            text = self._sub(EMAIL, "[EMAIL]", "email", text)
        if _HAS_DIGIT(text):
            if "iban" in self.rules:
                text = self._sub(IBAN, "[IBAN]", "iban", text, iban_valid)
            if "card" in self.rules:
                text = self._sub(CARD, "[CARD]", "card", text, luhn_valid)
            if "phone" in self.rules:
                text = self._sub(PHONE, "[PHONE]", "phone", text)
        if "name" in self.rules:
            lowered = text.lower()
            for name in names:
                if isinstance(name, str) and name.strip():
                    # Full name first, then its parts, so "regards, Emma" is caught as well as "Emma Smith".
                    for part in [name.strip(), *name.split()]:
                        if len(part) > 1 and part.lower() in lowered:
                            text = self._sub(_name_pattern(part), "[NAME]", "name", text)
                            lowered = text.lower()
        return text

    def scrub_many(self, texts: Sequence[str], names: Sequence[Sequence[str]] | None = None) -> list[str]:
        if names is None:
            return [self(t) for t in texts]
        return [self(t, n) for t, n in zip(texts, names)]


def mask_id(customer_id: object, keep: int = 2) -> str:
    """A customer id with all but its last ``keep`` characters hidden, for reports and examples."""
    text = str(customer_id)
    return "*" * max(len(text) - keep, 0) + text[-keep:] if len(text) > keep else "*" * len(text)


def audit(texts: Iterable[str], planted: Iterable[str]) -> dict:
    """Recall of scrubbing against known personal values: the share of planted values found in no text."""
    planted = sorted({p for p in planted if p})
    haystack = "\n".join(texts)
    leaked = [p for p in planted if p in haystack]
    return {"planted": len(planted), "leaked": len(leaked), "recall": 1 - len(leaked) / len(planted) if planted else 1.0,
            "examples": leaked[:5]}


def privacy_record(data) -> dict:
    """What a run did to personal data (written into run directories): scrubbing on/off, rules, columns."""
    return {"scrub_pii": bool(data.scrub_pii), "rules": list(RULES) if data.scrub_pii else [],
            "name_columns": list(data.schema.name_columns), "pii_columns_excluded": list(data.schema.pii_columns)}
