"""Row files (JSONL, JSON, parquet; a file, glob or directory): one bad line costs one row, not the job.

Every local data file of the stack — preference sets, SFT traces, pairwise-RLHF prompt
files, ``thinkrm score`` inputs — is read here, so they share one rule: a torn line
(``{not json``) or a line that is not a JSON object is *skipped and counted* with its
file and line number, and a row whose field has another type than in the other rows
(``"chosen": 5`` among strings) reaches the caller as it is, where the row's own check
skips and counts it with the same location. Whether too many rows are bad is the
caller's call (its ``max_bad_fraction``), because only the caller knows what a usable
row is.

Fast path: a clean JSONL file is parsed by pyarrow's multi-threaded JSON reader (the
engine 🤗 ``datasets`` uses); when pyarrow refuses the file (a torn line, a type that
changes between rows, a line longer than its block), that file is re-read line by line
with :mod:`json`. Parquet is read by pyarrow only (a damaged parquet file cannot be
partly read: that is a one-line error naming the file). Row values are plain Python
objects; with the fast path a top-level key missing from a row reads as None (as in
``datasets``), while nested objects keep only the keys they were written with.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError

logger = logging.getLogger(__name__)

JSON_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet",)
_GLOB_CHARS = "*?["
_BLANK_LINE = re.compile(rb"(?:^|\n)[ \t\r]*(?:\n|$)")
_JSON_ARRAY = re.compile(rb"\s*\[")
_BLOCK_BYTES = 32 << 20  # pyarrow's JSON block: a row longer than this takes the line-by-line path
REASONS_SHOWN = 3


# --------------------------------------------------------------------------- which files


def _suffix_kind(path: Path) -> Optional[str]:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


def _candidate_files(path: str, key: str) -> list[Path]:
    if any(ch in path for ch in _GLOB_CHARS):
        return [Path(p) for p in sorted(glob.glob(path, recursive=True)) if Path(p).is_file()]
    target = Path(path).expanduser()
    if target.is_dir():
        return sorted(p for p in target.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(target).parts))
    if target.is_file():
        return [target]
    raise ConfigError(f"{key}={path!r} does not exist (looked relative to {Path.cwd()})")


def resolve_data_files(path: str, key: str = "data.path") -> tuple[str, list[str]]:
    """The format ("json" or "parquet") and sorted files of a file, glob or directory.

    Files are sorted so that row indices (and the ids derived from them) are the
    same on every run; a directory mixing JSON and parquet is refused, so one
    format's rules apply to all of it. ``key`` names the setting in errors.
    """
    files = _candidate_files(str(path), key)
    kinds = {p: _suffix_kind(p) for p in files}
    readable = [p for p in files if kinds[p] is not None]
    if not readable:
        raise ConfigError(f"{key}={path!r} has no .jsonl/.json/.parquet files (found {len(files)} other files)")
    formats = sorted({kinds[p] for p in readable})
    if len(formats) > 1:
        raise ConfigError(f"{key}={path!r} mixes JSON and parquet files; point it at one format")
    return formats[0], [str(p) for p in readable]


def describe_files(files: Sequence[str]) -> str:
    if len(files) <= 3:
        return ", ".join(files)
    return f"{', '.join(files[:3])} and {len(files) - 3} more files"


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One row and where it came from: ``index`` counts rows over all files (bad lines included,
    so repairing one line does not renumber the rest); ``line`` is 1-based (JSON lines) or None."""

    data: Any
    index: int
    file: str
    line: Optional[int]
    position: int
    """0-based row position within its file."""

    @property
    def where(self) -> str:
        name = Path(self.file).name
        return f"{name}:{self.line}" if self.line is not None else f"{name} row {self.position + 1}"


@dataclass
class RowFile:
    """The rows of a file, glob or directory, and the lines that were not rows."""

    path: str
    files: list[str]
    rows: list[Row] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(location, reason) of lines that are not JSON objects."""
    slow_files: list[str] = field(default_factory=list)
    """Files pyarrow refused, read line by line instead."""

    @property
    def origin(self) -> str:
        return describe_files(self.files)

    @property
    def n_lines(self) -> int:
        """Rows plus bad lines: the denominator of a bad-row fraction."""
        return len(self.rows) + len(self.bad)

    @property
    def columns(self) -> list[str]:
        """Every key that any row has (a row without a key reads it as missing)."""
        seen: dict[str, None] = {}
        for row in self.rows:
            if isinstance(row.data, dict):
                seen.update(dict.fromkeys(row.data))
        return list(seen)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def first_bad(self, n: int = REASONS_SHOWN) -> str:
        return "; ".join(f"{where}: {why}" for where, why in self.bad[:n])


def read_rows(path: str, key: str = "data.path") -> RowFile:
    """Read every row of ``path`` (file, glob or directory); bad lines are counted, not fatal."""
    fmt, files = resolve_data_files(path, key)
    out = RowFile(path=str(path), files=files)
    for file in files:
        start = len(out.rows) + len(out.bad)
        if fmt == "parquet":
            rows = _parquet_rows(file)
            out.rows += [Row(d, start + i, file, None, i) for i, d in enumerate(rows)]
            continue
        data = _read_bytes(file)
        parsed = _fast_json(data, file)
        if parsed is None:
            out.slow_files.append(file)
            parsed = _slow_json(data, file, out.bad)
        out.rows += [Row(d, start + pos, file, line, pos) for pos, line, d in parsed]
    if out.slow_files:
        logger.info("%s: read line by line (pyarrow refused %s)", path, describe_files(out.slow_files))
    if out.bad:
        logger.info("%s: %d of %d lines are not JSON objects (the caller counts them as bad rows); first: %s",
                    path, len(out.bad), out.n_lines, out.first_bad())
    return out


def _read_bytes(file: str) -> bytes:
    raw = Path(file).read_bytes()
    if file.lower().endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ConfigError(f"{file}: not a readable gzip file ({exc})") from None
    return raw


def _parquet_rows(file: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise ConfigError(f"{file}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    return _table_rows(table)


def _table_rows(table: Any) -> list[dict]:
    """A pyarrow table as plain dicts, nested objects with only their own keys."""
    rows = [row for batch in table.to_batches() for row in batch.to_pylist()]
    if any(_has_struct(t) for t in table.schema.types):
        rows = [{k: _drop_invented_keys(v) for k, v in row.items()} for row in rows]
    return rows


def _fast_json(data: bytes, file: str) -> Optional[list[tuple[int, Optional[int], Any]]]:
    """(position, line, row) from pyarrow, or None when it refuses the file.

    pyarrow skips blank lines, so line numbers are only position + 1 when there
    are none; a file with blank lines takes the line-by-line path, which counts them.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    if _is_json_array(data, file) or _has_blank_lines(data):
        return None
    try:
        table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=_BLOCK_BYTES))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        logger.debug("%s: pyarrow refused it (%s)", file, exc)
        return None
    return [(i, i + 1, row) for i, row in enumerate(_table_rows(table))]


def _has_struct(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return True
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _has_struct(t.value_type)


def _drop_invented_keys(value: Any) -> Any:
    """Nested objects as they were written: pyarrow gives every object of a column the union of
    their keys (None where one lacked it), which would turn ``tags`` {"domain": "math"} beside
    {"difficulty": "hard"} into two keys each. Top-level keys stay (the columns)."""
    if isinstance(value, dict):
        return {k: _drop_invented_keys(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_invented_keys(v) for v in value]
    return value


def _is_json_array(data: bytes, file: str) -> bool:
    """A ``.json`` file holding one array (``.jsonl`` files are JSON lines, whatever their first line)."""
    return file.lower().endswith((".json", ".json.gz")) and _JSON_ARRAY.match(data) is not None


def _has_blank_lines(data: bytes) -> bool:
    body = data[:-1] if data.endswith(b"\n") else data
    return _BLANK_LINE.search(body) is not None


def _slow_json(data: bytes, file: str, bad: list[tuple[str, str]]) -> list[tuple[int, Optional[int], Any]]:
    """Rows of a JSON-lines file read one line at a time, or of a JSON array file."""
    name = Path(file).name
    if _is_json_array(data, file):
        return _json_array(data, file, bad)
    out, position = [], 0
    for number, raw in enumerate(data.split(b"\n"), start=1):  # bytes: U+2028 inside a string is legal JSON
        if not raw.strip():
            continue
        where = f"{name}:{number}"
        position += 1
        try:
            item = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            bad.append((where, f"not UTF-8 (byte {exc.start + 1})"))
            continue
        except json.JSONDecodeError as exc:
            bad.append((where, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if isinstance(item, dict):
            out.append((position - 1, number, item))
        else:
            bad.append((where, f"a JSON {_kind(item)}, not an object"))
    return out


def _json_array(data: bytes, file: str, bad: list[tuple[str, str]]) -> list[tuple[int, Optional[int], Any]]:
    try:
        items = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                          f"a JSON array file cannot be read in part — use JSON lines") from None
    if not isinstance(items, list):
        raise ConfigError(f"{file}: a JSON {_kind(items)} at the top level; expected JSON lines or an array")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            out.append((i, None, item))
        else:
            bad.append((f"{Path(file).name} row {i + 1}", f"a JSON {_kind(item)}, not an object"))
    return out


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def check_bad_fraction(n_bad: int, n_total: int, max_bad_fraction: float, what: str, first_reasons: str,
                       hint: str = "", origin: str = "") -> None:
    """ConfigError when more than ``max_bad_fraction`` of ``n_total`` rows are bad (or there are no rows):
    most rows bad means the wrong file, adapter or field map, not a dirty dataset."""
    of = f" of {origin}" if origin else ""
    if n_total == 0:
        raise ConfigError(f"{what}: {origin} has no rows" if origin else f"{what} has no rows")
    if n_bad / n_total > max_bad_fraction:
        raise ConfigError(f"{what}: {n_bad} of {n_total} rows{of} are unusable (more than max_bad_fraction="
                          f"{max_bad_fraction}){'; ' + hint if hint else ''}. First reasons: {first_reasons}")
