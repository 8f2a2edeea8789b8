"""Keep secrets out of everything dsdb prints, saves or logs.

Models mask their own secrets (`SecretStr`, URLs rendered with the password hidden). As a
second line of defence every secret value met while loading configuration is registered here,
and all text leaving the process (CLI output, error messages, saved plans, state, logs)
passes through `redact`, so a secret that slipped into some message is still masked.
"""

from __future__ import annotations

import threading

MASK = "***"
_MIN_LENGTH = 3  # masking one- or two-character "secrets" would shred ordinary text

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember `value` as a secret so `redact` masks it from now on."""
    if value and len(value) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with every registered secret replaced by the mask."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
