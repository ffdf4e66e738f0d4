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
        return clean(text)


_FILTER = SecretFilter()

# the environment's secrets that the SDKs and the VPN service's client read (each value is
# redacted wherever the toolkit prints, whatever path an error takes)
SECRET_VARIABLES = ("CLOUDCONNEXA_CLIENT_SECRET",)  # and each cloud's (clouds.Cloud)
MIN_SECRET = 12  # shorter values would redact ordinary words (the sandbox's "sandbox")


def secret(value: str) -> None:
    """Known from now on as a secret: `clean` and the SDK loggers' filter redact it."""
    if len(value) >= MIN_SECRET:
        _FILTER.secrets.add(value)
        # as a URL's query or a form would carry it
        from urllib.parse import quote, quote_plus

        _FILTER.secrets.update({quote(value, safe=""), quote_plus(value)} - {""})


def _redacting_records() -> None:
    """Every log record made in this process, by any logger (the SDKs' DEBUG logs print request
    headers: a session token, a Basic credential), has its message redacted as it is made."""
    made = logging.getLogRecordFactory()
    if getattr(made, "redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = made(*args, **kwargs)
        if _FILTER.secrets:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record stays as it was
                return record
            cleaned = clean(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def secrets_from_environment(environ: dict[str, str] | None = None) -> None:
    import os

    _redacting_records()
    env = os.environ if environ is None else environ
    from .clouds import known

    for name in (*SECRET_VARIABLES, *(v for c in known().values() for v in c.secret_variables)):
        if env.get(name):
            secret(env[name])


def clean(text: str) -> str:
    """`text` with every known secret replaced: what the CLI prints passes through here."""
    if not _FILTER.secrets:
        return text
    # longest first: a secret that contains another is replaced whole
    for s in sorted(_FILTER.secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


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
