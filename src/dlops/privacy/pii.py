"""Direct identifiers in text and string columns: e-mail addresses, phone numbers, payment-card numbers
(Luhn-checked), IBANs (mod-97-checked), IP addresses and national-ID patterns a task declares.

A finding names the column, the kind and the count and share of rows holding one, never a value:
what reaches reports, logs, Data Docs, MLflow and error messages is `mask`ed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = lambda match: True  # a checksum or parse that rules out look-alikes


def luhn_ok(text: str) -> bool:
    """The Luhn checksum of the digits in `text` (13-19 of them, as payment cards have)."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616: move the country code and check digits to the end, letters to numbers, mod 97 == 1."""
    compact = re.sub(r"\s", "", text).upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# A decimal number (3.14159265) or a date with its hour (2024-01-15 12): long digit runs with separators
NOT_PHONE = re.compile(r"\d+\.\d+|\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2})?")


def _phone_ok(text: str) -> bool:
    """9-15 digits (E.164's range, with a trunk prefix), written with a leading + or separators."""
    digits = sum(c.isdigit() for c in text)
    if NOT_PHONE.fullmatch(text.strip()):
        return False
    return 9 <= digits <= 15 and (text.startswith("+") or bool(re.search(r"[\s().-]", text)))


IP_CANDIDATE = r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]+)(?![\w.:])"  # v4 or v6
DETECTORS = (
    Detector("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    Detector("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), luhn_ok),
    Detector("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_ok),
    Detector("ip", re.compile(IP_CANDIDATE), _ip_ok),
)
# Last, and after any declared national-ID pattern: the loosest shape, not part of a longer digit run
PHONE = Detector(
    "phone", re.compile(r"(?<![\w+])(?<!\d[\s.-])\+?\(?\d[\d\s().-]{7,20}\d(?![\w]|[\s.-]\d)"), _phone_ok
)


def detectors(national_ids: Mapping[str, str] | None = None) -> tuple[Detector, ...]:
    """The built-in detectors and one per declared national-ID pattern (`{name: regex}`), most specific
    first: a span one detector claims is not looked at by the later ones."""
    extra = tuple(Detector(name, re.compile(regex)) for name, regex in (national_ids or {}).items())
    return (*DETECTORS, *extra, PHONE)


def found_in(text: str, found: Iterable[Detector]) -> set[str]:
    """The kinds of identifier `text` holds (a card number is not also a phone number)."""
    kinds: set[str] = set()
    spans: list[tuple[int, int]] = []
    for detector in found:
        for match in detector.pattern.finditer(text):
            if any(a < match.end() and match.start() < b for a, b in spans):
                continue  # already claimed by an earlier, more specific detector
            if detector.valid(match.group()):
                kinds.add(detector.kind)
                spans.append(match.span())
    return kinds


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str
    rows: int
    share: float

    def describe(self) -> str:
        share = f"{self.share:.1%}"
        article = "an" if self.kind[:1].lower() in "aeiou" else "a"
        what = f"{article} {self.kind}"
        return f"column {self.column!r}: {self.rows} row(s) ({share}) hold {what} (values masked)"


def screen(
    frame: pd.DataFrame, columns: Iterable[str], found: Iterable[Detector] | None = None
) -> list[Finding]:
    """For each column and kind, the rows holding at least one identifier of that kind."""
    chosen = tuple(found or detectors())
    findings = []
    for column in columns:
        values = frame[column].astype(object)
        counts: dict[str, int] = {}
        texts = values[values.map(lambda v: isinstance(v, str))]
        for value, rows in texts.value_counts().items():  # each distinct text once
            for kind in found_in(str(value), chosen):
                counts[kind] = counts.get(kind, 0) + int(rows)
        findings += [
            Finding(column, kind, rows, rows / max(len(values), 1)) for kind, rows in sorted(counts.items())
        ]
    return findings


def mask(text: str, found: Iterable[Detector] | None = None) -> str:
    """`text` with every identifier replaced by `<kind>`."""
    for detector in found or detectors():
        text = detector.pattern.sub(_replacement(detector), text)
    return text


def _replacement(detector: Detector) -> Callable[[re.Match[str]], str]:
    return lambda match: f"<{detector.kind}>" if detector.valid(match.group()) else match.group()
