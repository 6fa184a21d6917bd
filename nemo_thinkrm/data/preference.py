"""Load preference data: read a file or hub split, run its adapter on every row, keep the books.

Why the books matter. Public preference sets contain rows that cannot be used
(an empty response, a tie, a malformed conversation). Such rows are *skipped
and counted*, never silently dropped: ``LoadResult.skipped`` lists every bad row
with its id and reason, ``LoadResult.filtered`` every row dropped on purpose
(ties, rows of another split), and a file where most rows are bad is refused
with a ``ConfigError`` because that almost always means the wrong adapter or a
wrong ``field_map``, not a dirty dataset. Over-long prompts are likewise
reported (``count_over_length``), never cut. The record type is ``data/records.py``;
the dataset-specific parsing lives in each benchmark's module (``data/benchmarks/``).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.adapters import Adapter, RowContext, get_adapter
from nemo_thinkrm.data.records import ALL_SPLITS, BadRow, FilteredRow, PreferenceRecord
from nemo_thinkrm.data.rows import REASONS_SHOWN, check_bad_fraction, read_rows

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- load result


@dataclass
class LoadResult:
    """What ``load_preference_data`` read, with the bookkeeping a report needs.

    ``n_rows`` counts the raw rows examined; ``skipped`` lists ``(row id,
    reason)`` for bad rows and ``filtered`` for rows dropped on purpose;
    ``over_length`` is for callers to fill (``count_over_length``) once they
    know the tokenizer and the length budget.
    """

    records: list[PreferenceRecord]
    n_rows: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    over_length: list[str] = field(default_factory=list)
    filtered: list[tuple[str, str]] = field(default_factory=list)
    name: str = ""
    origin: str = ""

    def summary(self) -> str:
        """One line for logs and reports, e.g. ``rewardbench: 5 records from 7 rows of x.jsonl; ...``."""
        parts = [f"{self.name or 'data'}: {len(self.records)} records from {self.n_rows} rows"
                 + (f" of {self.origin}" if self.origin else "")]
        parts.append(f"skipped {len(self.skipped)} bad" + _top_reasons(self.skipped))
        parts.append(f"filtered {len(self.filtered)}" + _top_reasons(self.filtered))
        parts.append(f"{len(self.over_length)} over length")
        return "; ".join(parts)


def _top_reasons(rows: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return ""
    counts = Counter(reason for _, reason in rows).most_common(REASONS_SHOWN)
    return " (" + ", ".join(f"{reason}: {n}" for reason, n in counts) + ")"


def count_over_length(records: Sequence[PreferenceRecord], tokenizer_len: Callable[[PreferenceRecord], int],
                      budget: int) -> list[str]:
    """Ids of records whose prompt length (as ``tokenizer_len`` measures it) exceeds ``budget``.

    Callers report these (and store them in ``LoadResult.over_length``) and
    decide what to do; nothing here truncates, because a silently cut prompt
    can lose the very part a judge needs.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise ConfigError(f"the length budget must be a positive int, got {budget!r}")
    return [record.id for record in records if tokenizer_len(record) > budget]


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    """Rows to convert, as (index, location, file or None, row), with what a file reader already found bad."""

    rows: Iterable[tuple[int, str, Optional[str], Any]]
    columns: list[str]
    origin: str
    bad_lines: list[tuple[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence ``datasets`` progress bars for one load, then restore the caller's setting."""
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def _error_chain(err: BaseException) -> str:
    """The messages of an exception and its causes: ``datasets`` wraps the useful one."""
    messages: list[str] = []
    current: Optional[BaseException] = err
    while current is not None and len(messages) < 5:
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    return " <- ".join(messages) or type(err).__name__


def _read_hub(adapter: Adapter, hub_id: str, split: str) -> _Source:
    import datasets

    hub_split = adapter.hub_split_aliases.get(split, split)
    try:
        with _quiet_progress():
            dataset = datasets.load_dataset(hub_id, name=adapter.hub_config, data_dir=adapter.hub_data_dir,
                                            split=hub_split)
    except Exception as err:  # offline machines fail here at once; say how to fix it
        raise ConfigError(
            f"could not load {adapter.name!r} from the Hugging Face Hub ({hub_id!r}, split {hub_split!r}): "
            f"{_error_chain(err)}. This machine may be offline: download the data and pass a local file, glob or "
            f"directory with data.path=...") from err
    return _Source(((i, f"row {i + 1}", None, row) for i, row in enumerate(dataset)), list(dataset.column_names),
                   f"hub:{hub_id}")


def _read_local(path: str) -> _Source:
    table = read_rows(path)
    return _Source(((r.index, r.where, r.file, r.data) for r in table), table.columns, table.origin, list(table.bad))


# --------------------------------------------------------------------------- loading


def _check_load_args(max_bad_fraction: float, limit: Optional[int]) -> None:
    if isinstance(max_bad_fraction, bool) or not isinstance(max_bad_fraction, (int, float)) \
            or not 0.0 <= max_bad_fraction <= 1.0:
        raise ConfigError(f"max_bad_fraction must be a number in [0, 1], got {max_bad_fraction!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"limit must be a positive int or None, got {limit!r}")


def _open_source(adapter: Adapter, path: Optional[str], hub_id: Optional[str], split: str) -> _Source:
    """The rows to convert: local files (``path``) or the hub."""
    if path is not None:
        return _read_local(path)
    hub_id = hub_id or adapter.hub_id
    if hub_id is None:
        raise ConfigError(f"adapter {adapter.name!r} has no default source; pass data.path=... (a file, glob or "
                          f"directory)")
    return _read_hub(adapter, hub_id, split)


def _split_filter(adapter: Adapter, row: Mapping[str, Any], split: str) -> None:
    """Raise ``FilteredRow`` for a row of another split (datasets that keep all splits in one file)."""
    if adapter.split_field is None or split == ALL_SPLITS or adapter.split_field not in row:
        return
    value = row[adapter.split_field]
    if not isinstance(value, str):
        raise BadRow(f"field {adapter.split_field!r} must be a string, got {type(value).__name__}")
    wanted = adapter.split_aliases.get(split, split)
    if value != wanted:
        raise FilteredRow(f"split {value!r}, not {wanted!r}")


def _duplicate_reason(records: Sequence[PreferenceRecord], seen: dict[str, str]) -> Optional[str]:
    for record in records:
        if record.id in seen:
            return f"duplicate id {record.id!r} (first seen in {seen[record.id]})"
    if len({r.id for r in records}) != len(records):
        return "the row produced duplicate ids"
    return None


@dataclass
class _Books:
    """Running counts of one load."""

    records: list[PreferenceRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    filtered: list[tuple[str, str]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    """Row id → file:line, for messages about rows whose id does not say where they are."""
    n_rows: int = 0
    n_used_rows: int = 0

    def first_skipped(self) -> str:
        return "; ".join(f"{rid}{' (' + self.where[rid] + ')' if rid in self.where else ''}: {reason}"
                         for rid, reason in self.skipped[:REASONS_SHOWN])


def _convert_row(adapter: Adapter, row: Mapping[str, Any], index: int, where: str, file: Optional[str], split: str,
                 field_map: Optional[Mapping[str, str]], books: _Books) -> None:

    books.n_rows += 1
    raw_id, id_problem = adapter.read_id(row, index, field_map)
    row_id = f"{adapter.name}:{raw_id}" if raw_id is not None else f"{adapter.name}:#{index}"
    books.where.setdefault(row_id, where)
    ctx = RowContext(index=index, source=adapter.name, raw_id=raw_id or str(index), field_map=field_map, file=file)
    try:
        if id_problem is not None:
            raise BadRow(id_problem)
        _split_filter(adapter, row, split)
        records = adapter.convert(row, ctx)
    except FilteredRow as why:
        books.filtered.append((row_id, str(why)))
        return
    except BadRow as why:
        books.skipped.append((row_id, str(why)))
        return
    duplicate = _duplicate_reason(records, books.seen)
    if duplicate is not None:
        books.skipped.append((row_id, duplicate))
        return
    for record in records:
        books.seen[record.id] = where
    books.records.extend(records)
    books.n_used_rows += bool(records)


def _enforce_quality(adapter: Adapter, origin: str, books: _Books, max_bad_fraction: float) -> None:
    if books.n_rows == 0:
        raise ConfigError(f"{adapter.name}: {origin} has no rows")
    if books.skipped:
        first = books.first_skipped()
        check_bad_fraction(len(books.skipped), books.n_rows, max_bad_fraction, adapter.name, first,
                           hint="check data.name (the adapter) and data.field_map", origin=origin)
        logger.warning("%s: skipped %d of %d rows of %s as bad; first reasons: %s",
                       adapter.name, len(books.skipped), books.n_rows, origin, first)
    if not books.records:
        raise ConfigError(f"{adapter.name}: no records left from {books.n_rows} rows of {origin} "
                          f"(filtered{_top_reasons(books.filtered)})")


def load_configured(data: Any) -> LoadResult:
    """``load_preference_data`` for a ``config/data.py: DataConfig``: what eval, robustness, synth and
    ``thinkrm self-train`` read; no records at all is an error naming the data and why."""
    loaded = load_preference_data(data.name, path=data.path, hub_id=data.hub_id, split=data.split,
                                  field_map=dict(data.field_map) or None,
                                  max_bad_fraction=data.max_bad_fraction, limit=data.limit)
    if not loaded.records:
        raise ConfigError(f"data {data.name!r} produced no records ({loaded.summary()})")
    logger.info("data: %s", loaded.summary())
    return loaded


def load_preference_data(name: str, path: Optional[str] = None, hub_id: Optional[str] = None,
                         split: str = "test", field_map: Optional[Mapping[str, str]] = None,
                         max_bad_fraction: float = 0.5, limit: Optional[int] = None) -> LoadResult:
    """Read a preference dataset with adapter ``name`` and return its records and books.

    Source: ``path`` (a JSONL/JSON/parquet file, a glob, or a directory of
    such files, read by ``data/rows.py``: a torn line is one bad row) wins; otherwise the adapter's local
    default (JudgeBench's shared files), otherwise ``load_dataset(hub_id or
    the adapter's hub id, split=split)``, which on an offline machine raises a
    ``ConfigError`` asking for ``data.path``. ``split`` picks the hub split and,
    for files that carry a per-row split (HelpSteer2-Preference), the rows;
    ``"all"`` keeps every row. ``field_map`` configures the ``generic`` adapter.
    ``limit`` stops after that many rows produced records (an RM-Bench row
    gives 9). More than ``max_bad_fraction`` bad rows is a ``ConfigError``.
    """

    _check_load_args(max_bad_fraction, limit)
    adapter = get_adapter(name)
    adapter.check_field_map(field_map)
    source = _open_source(adapter, path, hub_id, split)
    origin = source.origin
    adapter.check_columns(source.columns, field_map, origin)
    books = _Books()
    for where, reason in source.bad_lines:  # lines that were not rows at all count as bad rows
        books.n_rows += 1
        books.skipped.append((f"{adapter.name}:{where}", reason))
    for index, where, file, row in source.rows:
        if limit is not None and books.n_used_rows >= limit:
            break
        _convert_row(adapter, row, index, where, file, split, field_map, books)
    _enforce_quality(adapter, origin, books, max_bad_fraction)
    result = LoadResult(records=books.records, n_rows=books.n_rows, skipped=books.skipped,
                        filtered=books.filtered, name=adapter.name, origin=origin)
    if books.filtered:
        logger.info("%s: filtered %d rows on purpose%s", adapter.name, len(books.filtered),
                    _top_reasons(books.filtered))
    logger.info("%s", result.summary())
    return result
