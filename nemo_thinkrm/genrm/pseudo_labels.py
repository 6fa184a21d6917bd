"""GRAM-R²'s filter for unlabeled pairs: which of the judge's own predictions become training labels.

The judge judges an unlabeled pair (x, y) several times (seeds) in both orders; each verdict is
mapped back to the pair's own orientation (x shown as A), so "A" means "x is better" whichever
order was shown. A pair is pseudo-labeled only when the judge is *confident* (the share of all
its verdicts, unreadable ones included, that name the majority response is at least
``min_agreement``) and *position-consistent* (the majority of each order on its own names that
same response): a judge that follows the position is right in one order only, and its guess
would teach the next round its own bias. Everything else is left for a later round.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.verdict import Verdict, order_corrected


@dataclass(frozen=True)
class PseudoLabel:
    """The filter's decision for one pair, with the figures it was made from (for the round's report)."""

    label: Optional[str]
    """"A" (x is better) or "B" (y is better) in the pair's own orientation; None when not kept."""
    agreement: float
    """Share of all verdicts (invalid ones count against) that name the majority response."""
    consistent: bool
    """Each order's own majority names the same response."""
    votes: int

    @property
    def kept(self) -> bool:
        return self.label is not None


def _majority(labels: Sequence[Optional[str]]) -> Optional[str]:
    """The strict majority among readable verdicts ("A"/"B"), None on a tie or none readable."""
    counts = Counter(x for x in labels if x is not None)
    if counts["A"] == counts["B"]:
        return None
    return "A" if counts["A"] > counts["B"] else "B"


def pseudo_label(shown_as_is: Sequence[Verdict], shown_swapped: Sequence[Verdict],
                 min_agreement: float) -> PseudoLabel:
    """Decide one pair from its verdicts in the two orders (``shown_swapped``: y shown as A)."""
    if not 0.5 < min_agreement <= 1:
        raise ConfigError(f"min_agreement must be in (0.5, 1], got {min_agreement}")
    if not shown_as_is or not shown_swapped:
        raise ConfigError("a pseudo-label needs verdicts in both orders")
    first = [v.label for v in shown_as_is]
    second = [order_corrected(v, swapped=True).label for v in shown_swapped]
    overall = _majority(first + second)
    consistent = overall is not None and _majority(first) == overall and _majority(second) == overall
    votes = len(first) + len(second)
    agreement = 0.0 if overall is None else sum(x == overall for x in first + second) / votes
    kept = consistent and agreement >= min_agreement
    return PseudoLabel(label=overall if kept else None, agreement=agreement, consistent=consistent, votes=votes)
