"""A cache of judge answers keyed by (judge prompt, sampling): never pay twice for the same verdict.

The key hashes the fully rendered judge prompt — which already contains the conversation,
both responses in their order, and the template's wording — together with the sampling
settings (temperature, max tokens, seed). In memory by default; with a path it is also an
append-only JSONL file, so a resumed or repeated run reuses earlier verdicts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional


def cache_key(prompt: Any, sampling: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([prompt, sampling], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """``write=False``: read the file, keep new answers in memory only (one process writes the file)."""

    def __init__(self, path: Optional[str | Path] = None, write: bool = True) -> None:
        self.path = Path(path) if path else None
        self.write = write
        self._items: dict[str, dict[str, Any]] = {}
        self.hits = 0
        if self.path and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self._items[row["key"]] = row["value"]
                except (json.JSONDecodeError, KeyError):
                    continue  # a torn last line from an interrupted run

    def get(self, key: str) -> Optional[dict[str, Any]]:
        value = self._items.get(key)
        if value is not None:
            self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._items[key] = value
        if self.path and self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
