"""An MLflow tracking URI checked before a run starts: an unreachable server is one clear error
within seconds, never a long retry loop inside the first trial (plain stdlib, no MLflow)."""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mikgnn.redact import redact, split_credentials

PROBE_TIMEOUT_S = 5.0


class TrackingUriError(ValueError):
    pass


def probe_tracking_uri(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingUriError when ``uri`` cannot be used: a server that does not answer within
    ``timeout_s``, or a sqlite file in a folder that does not exist."""
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "sqlite":
        path = uri.split(":///", 1)[-1] if ":///" in uri else ""
        if path and path != ":memory:" and not Path(path).resolve().parent.is_dir():
            raise TrackingUriError(f"--tracking-uri {uri}: the folder {Path(path).resolve().parent} does not exist")
        return
    if scheme not in ("http", "https"):
        return
    bare, user, password = split_credentials(uri)
    request = urllib.request.Request(bare.rstrip("/") + "/health")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # the server answered (an auth error, an old server without /health): reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUriError(f"--tracking-uri {redact(uri)}: no MLflow server answered within {timeout_s:g} s "
                               f"({reason})") from None
