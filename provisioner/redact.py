"""Keeps secrets out of the SDKs' own logs. botocore's DEBUG log prints request bodies (the
VPN profile in PutParameter among them); a deployment script that turns DEBUG on must not
see the profile. Providers register each secret before sending it."""

from __future__ import annotations

import json
import logging

REDACTED = "<redacted by connector-provisioner>"
MIN_LINE = 16
EXTRAS = ("httpRequest", "httpResponse")


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = self._clean(message), ()
        # Google's REST transports put the request body in the record's extras
        # (`httpRequest`), where a structured handler prints it
        for key in EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                text = json.dumps(value, default=str)
                if any(s in text for s in self.secrets):
                    setattr(record, key, json.loads(self._clean(text)))
        return True

    def _clean(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        return text


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
