"""Keeps secrets out of the SDKs' own logs. botocore's DEBUG log prints request bodies (the
VPN profile in PutParameter among them); a deployment script that turns DEBUG on must not
see the profile. Providers register each secret before sending it."""

from __future__ import annotations

import logging

REDACTED = "<redacted by connector-provisioner>"
MIN_LINE = 16


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for s in self.secrets:
                message = message.replace(s, REDACTED)
            record.msg, record.args = message, ()
        return True


_FILTER = SecretFilter()


def protect(secret: str, *loggers: str) -> None:
    """Redact `secret` from every record of `loggers` (the SDK loggers that print bodies)."""
    if not secret:
        return
    # SDKs log bodies encoded (JSON, bytes reprs) so newlines do not survive: redact every
    # substantial line on its own too (key material is long lines)
    _FILTER.secrets.add(secret)
    _FILTER.secrets.update(
        line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_LINE
    )
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
