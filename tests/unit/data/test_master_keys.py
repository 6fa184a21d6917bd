"""Master-key negatives for training: which pairs, which keys, which labels — checked by hand."""

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.master_keys import FRAGMENTS, MASTER_KEYS, TRAINING_KEYS, composed_key, master_key_negatives
from nemo_thinkrm.data.records import PreferenceRecord


def _records(n):
    ctx = ({"role": "user", "content": "What is 2 + 3?"},)
    return [PreferenceRecord(id=f"r{i}", context=ctx, response_a="2 + 3 = 5.", response_b="2 + 3 = 6.", label="A",
                             strength=-2 if i % 2 else None) for i in range(n)]


def test_training_keys_are_not_the_evaluation_keys():
    assert not set(TRAINING_KEYS.values()) & set(MASTER_KEYS.values())
    assert not set(TRAINING_KEYS) & set(MASTER_KEYS)


def test_negatives_pair_the_better_response_with_a_key_and_name_the_real_one():
    recs = _records(20)
    neg = master_key_negatives(recs, 0.25, seed=3)
    assert len(neg) == 5 and len({r.id.split(":")[0] for r in neg}) == 5       # 25 % of 20, one per record
    for r in neg:
        real = r.response_b if r.label == "B" else r.response_a
        other = r.response_a if r.label == "B" else r.response_b
        if r.tags["master_key"] == "composed":   # fragments joined: no claim, none of the evaluation's keys
            assert not any(c.isdigit() for c in other) and other not in MASTER_KEYS.values()
        else:
            assert other == TRAINING_KEYS[r.tags["master_key"]]
        assert real == "2 + 3 = 5." and r.section == "master_key_negative"
        source = recs[int(r.id.split(":")[0][1:])]
        # multiclass strength: the real response is much better (−3 when it is A), none when the source had none
        assert r.strength == (None if source.strength is None else (-3 if r.label == "A" else 3))
    assert {r.label for r in master_key_negatives(recs, 1.0, seed=0)} == {"A", "B"}   # both positions occur
    assert master_key_negatives(recs, 0.25, seed=3) == neg and master_key_negatives(recs, 0.0, seed=3) == []
    # half of them composed by default, none with composed_share=0
    tags = [r.tags["master_key"] for r in master_key_negatives(_records(400), 1.0, seed=1)]
    assert 150 < tags.count("composed") < 250
    assert "composed" not in {r.tags["master_key"] for r in master_key_negatives(recs, 1.0, seed=1, composed_share=0)}


def test_composed_keys_have_no_claim_and_are_never_an_evaluation_key():
    import random

    rng = random.Random(0)
    keys = [composed_key(rng) for _ in range(2000)]
    assert len(set(keys)) > 1000 and not set(keys) & set(MASTER_KEYS.values())
    assert not any(ch.isdigit() for k in keys for ch in k)
    # the one fragment that is also an evaluation key alone ("." is not a fragment; ":" neither)
    assert not set(FRAGMENTS) & set(MASTER_KEYS.values())


def test_only_training_stages_take_master_key_negatives():
    from dataclasses import replace

    from nemo_thinkrm.config.data import DataConfig
    from nemo_thinkrm.config.evaluation import EvalConfig, SynthConfig

    data = DataConfig(name="generic", path="x.jsonl", master_key_negatives=0.1)
    replace(SynthConfig(), data=data).validate()
    with pytest.raises(ConfigError, match="an evaluation reads its data as it is"):
        replace(EvalConfig(), data=data).validate()
    with pytest.raises(ConfigError, match=r"master_key_negatives must be in \[0, 1\]"):
        replace(SynthConfig(), data=replace(data, master_key_negatives=1.5)).validate()
