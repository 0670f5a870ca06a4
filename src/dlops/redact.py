"""Secrets out of MLflow params, tags and logs: values of secret-looking keys, passwords in URLs, and
well-known token shapes become `***`.

Applied where params and tags are logged (dlops.tracking) and as a logging filter on the handlers of the
CLI and the Prefect flows, so a password typed into params.yaml or an environment variable never lands
in the tracking store, a Prefect log or a Slack channel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

# Anywhere in a key: unambiguous words. `token` and `auth` only as the key's last word, so that
# `api_token`, `auth` and `basic_auth` are secret while `token_dropout`, `tokenizer` and `author` are not.
_SECRET_WORDS = re.compile(
    r"pass(word|wd)|secret|credential|api_?key|access_?key|private_?key|pseudonym_?key|authorization"
    r"|(^|_)(o?auth|[a-z]*token)$"
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s]*):(?P<pw>[^@/\s]+)@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b[A-Za-z_][\w.-]*)(?P<sep>[\"']?\s*[=:]\s*)"
    r"(?P<value>(?:bearer|basic|token)\s+[^\s\"'&,;]+|\"[^\"]*\"|'[^']*'|[^\s\"'&,;]+)",
    re.IGNORECASE,
)
_TOKEN_SHAPES = [  # (pattern, what stays visible)
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), r"\1 " + MASK),
    (re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{20,}"), r"\1" + MASK),
    (re.compile(r"\b(github_pat_)[A-Za-z0-9_]{20,}"), r"\1" + MASK),
    (re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b"), MASK),
    (re.compile(r"\b(xox[abprs]-)[A-Za-z0-9-]{10,}"), r"\1" + MASK),
    (re.compile(r"\b(sk-|hf_)[A-Za-z0-9_-]{20,}"), r"\1" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), MASK),  # a JWT
    # webhook URLs carry their secret in the path (Slack, Discord, Teams)
    (re.compile(r"(https?://hooks\.slack\.com/)\S+"), r"\1" + MASK),
    (re.compile(r"(https?://(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/)\S+"), r"\1" + MASK),
    (re.compile(r"(https?://[\w.-]+\.webhook\.office\.com/)\S+"), r"\1" + MASK),
]


def is_secret_key(key: str) -> bool:
    """Whether a mapping key or a `key=value` name looks like it holds a secret (case-insensitive;
    `apiToken`, `API-KEY` and `db.password` all count)."""
    normalised = re.sub(r"[^a-z0-9]+", "_", _CAMEL.sub(r"\1_\2", key).lower()).strip("_")
    return bool(_SECRET_WORDS.search(normalised))


def redact_mapping(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A copy of `data` with the values of secret-looking keys (at any depth, judged by the dotted key
    path) replaced by `***`, and every other string passed through `redact_text`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if is_secret_key(str(path)):
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value, f"{path}.")
        elif isinstance(value, str):
            out[key] = redact_text(value)
        else:
            out[key] = value
    return out


def redact_text(text: str) -> str:
    """`text` with URL passwords (`scheme://user:***@host`), values of secret `key=value` / `key: value`
    pairs and well-known token shapes (Bearer, GitHub, AWS, Slack, JWT, webhook URLs) replaced by `***`."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    for pattern, replacement in _TOKEN_SHAPES:
        text = pattern.sub(replacement, text)
    return _mask_pairs(text)


def _mask_pairs(text: str) -> str:
    """Mask the value of each secret `key=value` / `key: value`; after a key that is not secret the
    scan goes on right after the key, so `https://x/?token=...` still finds `token`."""
    parts, pos = [], 0
    while match := _KEY_VALUE.search(text, pos):
        value = match["value"]
        if is_secret_key(match["key"]) and value.strip("\"'") != MASK:
            quote = value[0] if value[:1] in ("'", '"') else ""
            parts.append(f"{text[pos : match.start('value')]}{quote}{MASK}{quote}")
            pos = match.end()
        else:
            parts.append(text[pos : match.end("key")])
            pos = match.end("key")
    return "".join(parts) + text[pos:]


def url_origin(url: str) -> str:
    """Scheme and host of a URL, the rest elided: enough to say where a webhook went, not its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) and traceback text through `redact_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def install(*logger_names: str) -> None:
    """Add one `RedactingFilter` to every handler of the named loggers (the root logger when none are
    named); handler filters also see records propagated from child loggers. Idempotent."""
    for name in logger_names or ("",):
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
