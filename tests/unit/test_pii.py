"""The screen for direct identifiers: what it finds, what it must not take for one, and masking."""

from __future__ import annotations

import pandas as pd
import pytest

from dlops.privacy.pii import detectors, found_in, iban_ok, luhn_ok, mask, screen


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe+films@example.co.uk today", {"email"}),
        ("card 4111 1111 1111 1111 expires soon", {"card"}),
        ("paid with 4111-1111-1111-1111", {"card"}),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", {"iban"}),
        ("from 192.168.10.4 and 2001:db8::8a2e:370:7334", {"ip"}),
        ("call +44 20 7946 0958 or (555) 123-4567", {"phone"}),
        ("a great film, 10/10, two hours long, seen 3 times in 2019", set()),
        ("4111 1111 1111 1112 fails Luhn", set()),  # a look-alike without its checksum
        ("version 1.2.3.4.5 and 999.1.1.1", set()),  # neither is an IP address
        ("GB82WEST12345698765433", set()),  # a wrong IBAN check
    ],
)
def test_each_kind_is_found_and_look_alikes_are_not(text: str, kinds: set[str]) -> None:
    assert found_in(text, detectors()) == kinds


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112") and not luhn_ok("42")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")


def test_a_declared_national_id_pattern_is_screened_too() -> None:
    found = detectors({"us-ssn": r"\b\d{3}-\d{2}-\d{4}\b"})
    assert found_in("ssn 078-05-1120 on file", found) == {"us-ssn"}


def test_findings_name_column_count_and_share_never_the_value() -> None:
    frame = pd.DataFrame(
        {
            "review": ["mail me at a@b.org", "fine", None, "a@b.org or c@d.net", "call +1 415 555 0100"],
            "city": ["Paris"] * 5,
        }
    )
    findings = screen(frame, ["review", "city"])
    assert [(f.column, f.kind, f.rows) for f in findings] == [("review", "email", 2), ("review", "phone", 1)]
    said = findings[0].describe()
    assert "'review'" in said and "2 row(s) (40.0%)" in said and "a@b.org" not in said


def test_mask_replaces_each_identifier_with_its_kind() -> None:
    text = "a@b.org paid 4111 1111 1111 1111 from 10.0.0.1, ref 4111 1111 1111 1112"
    assert mask(text) == "<email> paid <card> from <ip>, ref 4111 1111 1111 1112"
