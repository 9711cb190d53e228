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
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")  # what MLflow 3 tracks to
SQLITE_MAGIC = b"SQLite format 3\x00"


class TrackingUriError(ValueError):
    pass


def probe_tracking_uri(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingUriError when ``uri`` cannot be used: a server that does not answer within
    ``timeout_s``, or a sqlite file in a folder that does not exist."""
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme not in SCHEMES:
        raise TrackingUriError(f"--tracking-uri {redact(uri)}: MLflow does not track to a {scheme or 'plain path'!r} "
                               "URI; use sqlite:///path/mlflow.db, http(s)://host:port or a database URI")
    if scheme == "sqlite":
        path = uri.split(":///", 1)[-1] if ":///" in uri else ""
        if path and path != ":memory:":
            _check_sqlite(uri, Path(path))
        return
    if scheme not in ("http", "https"):
        return
    bare, user, password = split_credentials(uri)
    request = urllib.request.Request(bare.rstrip("/") + "/health")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            said = answer.read(200)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403) or _speaks_mlflow(bare, request, timeout_s):
            return  # an auth error, or an older server without /health that answers MLflow's REST API
        raise TrackingUriError(f"--tracking-uri {redact(uri)}: something answers there, but not an MLflow tracking "
                               f"server (HTTP {exc.code} for /health and for MLflow's REST API); check the host and "
                               "port") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUriError(f"--tracking-uri {redact(uri)}: no MLflow server answered within {timeout_s:g} s "
                               f"({reason})") from None
    if said.strip() != b"OK":  # MLflow's /health says OK; a web server of another kind says more
        raise TrackingUriError(f"--tracking-uri {redact(uri)}: something answers there, but not an MLflow tracking "
                               f"server (/health said {said[:60]!r}); check the host and port")


def _speaks_mlflow(bare: str, health: urllib.request.Request, timeout_s: float) -> bool:
    """Whether the server answers MLflow's REST API (JSON, an error_code on an error)."""
    request = urllib.request.Request(bare.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers=dict(health.header_items()))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            body = answer.read(2000)
    except urllib.error.HTTPError as exc:
        body = exc.read(2000)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return body.lstrip().startswith(b"{")


def _check_sqlite(uri: str, path: Path) -> None:
    """A sqlite store's file: in a folder that exists, and an SQLite database if it exists."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise TrackingUriError(f"--tracking-uri {uri}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise TrackingUriError(f"--tracking-uri {uri}: {path} is a folder; name a database file in it "
                               f"(sqlite:///{path / 'mlflow.db'})")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                raise TrackingUriError(f"--tracking-uri {uri}: {path} is not an SQLite database (its first bytes are "
                                       "not SQLite's); name a new file, or the search's mlflow.db")


def sqlite_file(uri: str | None) -> Path | None:
    """The database file of a sqlite store (the default ``sqlite:///mlflow.db``: in this folder);
    None for a server or database URI."""
    uri = uri or "sqlite:///mlflow.db"
    return Path(uri[len("sqlite:///"):]).resolve() if uri.startswith("sqlite:///") else None


def sqlite_folder(uri: str | None) -> Path | None:
    """The folder a sqlite store lies in, which every node that runs a trial must see; None for
    a server or database URI."""
    path = sqlite_file(uri)
    return None if path is None else path.parent
