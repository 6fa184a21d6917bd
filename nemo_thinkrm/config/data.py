"""A preference dataset by adapter name (``config/registry.py: DATASETS``), local path or hub id: what
eval, GRPO, robustness, synth and the reward model read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import DATASETS


@dataclass
class DataConfig:
    """A preference dataset: adapter name + local path (air-gapped) or hub id."""

    name: str = "judgebench"
    """Adapter: helpsteer2_preference, helpsteer3, rewardbench, rm_bench, judgebench, skywork_preference, generic."""
    path: Optional[str] = None
    """Local file, glob or directory (JSONL/JSON/parquet); takes precedence over hub_id."""
    hub_id: Optional[str] = None
    """🤗 hub dataset id (None: the adapter's default)."""
    split: str = "test"
    field_map: Dict[str, str] = field(default_factory=dict)
    """generic adapter: our field name → the file's column."""
    limit: Optional[int] = None
    """Use only the first N records (quick looks)."""
    max_bad_fraction: float = 0.5
    """More bad rows than this fraction is an error, not a skip."""
    master_key_negatives: float = 0.0
    """Training data only (synth, GRPO): for this share of the pairs, one more pair of the better response
    against a content-free one (``data/master_keys.py: TRAINING_KEYS``), so the judge learns not to reward
    ":" or "Let me think" ("One Token to Fool LLM-as-a-Judge"'s Master-RM remedy)."""

    def validate(self) -> None:
        DATASETS.check(self.name, "data.name")
        if not 0 <= self.master_key_negatives <= 1:
            raise ConfigError(f"data.master_key_negatives must be in [0, 1], got {self.master_key_negatives}")
