"""Judge endpoint lists: URLs, comma-separated strings or the endpoints file ``serve-judge`` writes.

Each URL is normalised to ``scheme://host:port`` (a trailing ``/v1`` is dropped) and checked,
so a typo is one line naming the entry instead of thousands of failed requests.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence, Union
from urllib.parse import urlsplit

from nemo_thinkrm.config.errors import ConfigError

logger = logging.getLogger("nemo_thinkrm.generation.openai_client")



def normalize_endpoint(url: str, source: str = "judge endpoints") -> str:
    """``url`` as a base URL without a trailing ``/`` or ``/v1``; ConfigError if malformed.

    Users paste both ``http://h:8000`` and ``http://h:8000/v1/`` (the OpenAI SDK's
    ``base_url``); we append ``/v1/...`` and ``/health`` ourselves, so both must
    map to the same base.
    """
    text = url.strip()
    parts = urlsplit(text)
    hint = "expected http(s)://host[:port][/v1]"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"malformed judge endpoint {text!r} in {source}: {hint}")
    try:
        parts.port  # noqa: B018 -- property access validates the port
    except ValueError as exc:
        raise ConfigError(f"malformed judge endpoint {text!r} in {source}: bad port ({exc})") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"malformed judge endpoint {text!r} in {source}: no query or fragment allowed; {hint}")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _read_endpoints_file(path: Path) -> list[str]:
    """URLs from a file: one per line, ``#`` starts a comment, blank lines skipped."""
    items: list[str] = []
    for line in path.read_text().splitlines():
        content = line.split("#", 1)[0]
        items.extend(tok for tok in re.split(r"[\s,]+", content) if tok)
    return items


def _raw_endpoints(spec: Union[str, os.PathLike, Iterable[str]]) -> tuple[list[str], str]:
    """The unvalidated endpoint strings in ``spec`` and a description for messages."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        return [tok for item in spec for tok in str(item).split(",")], "endpoint list"
    text = spec.strip()
    if not text:
        raise ConfigError("judge endpoints: empty; give comma-separated URLs or a file with one URL per line")
    if "://" in text:
        return text.split(","), f"endpoints {text!r}"
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"judge endpoints {text!r} is neither a URL (http://host:port) nor an existing endpoints file"
        )
    return _read_endpoints_file(path), f"endpoints file {path}"


def load_endpoints(spec: Union[str, os.PathLike, Sequence[str]]) -> list[str]:
    """Normalized, de-duplicated endpoint base URLs from a comma string, a file path, or a list.

    A Slurm job writes its judge servers' URLs to a file once they are healthy,
    so the same config key takes either the URLs themselves or that file. An
    empty result or a malformed URL is a ConfigError here, before any traffic.
    Duplicates are dropped (with a warning): routing is per URL, and a URL
    listed twice would only skew the least-outstanding choice.
    """
    raw, source = _raw_endpoints(spec)
    urls: list[str] = []
    for item in raw:
        if not item.strip():
            continue
        url = normalize_endpoint(item, source)
        if url in urls:
            logger.warning("judge endpoint %s listed twice in %s; using it once", url, source)
            continue
        urls.append(url)
    if not urls:
        raise ConfigError(f"no judge endpoints in {source}")
    return urls
