"""Secrets never reach a record: the user-info of a URI and the values of *_KEY, *_SECRET,
*_TOKEN and password settings are masked in every command, tag and line the project writes."""

from __future__ import annotations

import re
import urllib.parse

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_ASSIGNED = re.compile(r"(?P<name>\b[\w.-]*(?:KEY|SECRET|TOKEN|PASSWORD|password)[\w.-]*)(?P<sep>\s*[=:]\s*)"
                       r"(?P<value>[^\s'\",;]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with URI user-info and secret-named values replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _ASSIGNED.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """(the URI without user-info, user, password): a client then sends the credentials from
    the environment (MLflow: MLFLOW_TRACKING_USERNAME / _PASSWORD), and the URI it records,
    pickles and logs holds none."""
    parts = urllib.parse.urlsplit(uri)
    if not (parts.username or parts.password):
        return uri, None, None
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), parts.username, parts.password
