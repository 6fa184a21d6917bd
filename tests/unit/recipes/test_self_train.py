"""``thinkrm self-train``'s own logic, without models: the config's checks, the pool split, and how the
judge's verdicts on unlabeled pairs become pseudo-labeled training pairs (by hand-made predictions)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nemo_thinkrm.config.data import DataConfig
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.self_train import SelfTrainConfig
from nemo_thinkrm.recipes.self_train import check_templates, split_data, write_pseudo_labels
from nemo_thinkrm.runtime.pipeline import Pipeline


def _cfg(tmp_path: Path, **kw) -> SelfTrainConfig:
    cfg = SelfTrainConfig(run_dir=str(tmp_path), task="arithmetic", task_pairs=200, heldout_pairs=20, **kw)
    cfg.validate()
    return cfg


@pytest.mark.parametrize("change, match", [
    ({"task": None}, "pool.path"),
    ({"traced_share": 0.0}, "traced_share must be > 0"),
    ({"traced_share": 0.6, "labeled_share": 0.4}, "leaves no unlabeled pairs"),
    ({"min_agreement": 0.5}, r"min_agreement must be in \(0.5, 1\]"),
    ({"votes": 0}, "votes must be >= 1"),
    ({"recipes": {"synth": "tiny_synth", "sft": "tiny_sft"}}, r"recipes must name a config for \['eval', 'teacher'\]"),
    ({"overrides": {"grpo": ["x=1"]}}, r"unknown stage kinds \['grpo'\]"),
    ({"proving_template": "compact_binary"}, "must differ"),
])
def test_config_refuses(change, match):
    cfg = replace(SelfTrainConfig(task="arithmetic"), **change)
    with pytest.raises(ConfigError, match=match):
        cfg.validate()


def test_templates_are_checked_by_what_they_show(tmp_path):
    with pytest.raises(ConfigError, match="shows the preferred response"):
        check_templates(replace(_cfg(tmp_path), template="proving_compact_binary",
                                proving_template="proving_reasoning_binary"))
    with pytest.raises(ConfigError, match="does not show the preferred"):
        check_templates(replace(_cfg(tmp_path), proving_template="reasoning_binary"))
    with pytest.raises(ConfigError, match="multiclass"):
        check_templates(replace(_cfg(tmp_path), template="reasoning_multiclass"))
    check_templates(_cfg(tmp_path))


def test_the_pool_is_split_by_share_once(tmp_path):
    cfg = _cfg(tmp_path, traced_share=0.1, labeled_share=0.25, unlabeled_limit=100)
    p = Pipeline(cfg, tmp_path)
    sizes = split_data(p)
    assert sizes == {"traced": 20, "labeled": 50, "unlabeled": 100, "heldout": 20}
    ids = {name: [json.loads(x)["id"] for x in (tmp_path / "data" / f"{name}.jsonl").read_text().splitlines()]
           for name in sizes}
    assert {k: len(v) for k, v in ids.items()} == sizes
    # the task draws train pairs with repetition, so ids (not texts) are what the shares must not share
    assert not set(ids["traced"]) & set(ids["labeled"]) and not set(ids["labeled"]) & set(ids["unlabeled"])
    row = json.loads((tmp_path / "data" / "traced.jsonl").read_text().splitlines()[0])
    assert row["context"][0]["role"] == "user" and row["label"] in ("A", "B")
    # written once: a resumed run reads the same split even if the shares in its config changed
    assert split_data(Pipeline(replace(cfg, traced_share=0.5), tmp_path)) == sizes


def test_the_pool_can_be_any_preference_file(tmp_path):
    rows = [{"prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}", "label": "AB"[i % 2]} for i in range(10)]
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fm = {"prompt": "prompt", "response_a": "response_a", "response_b": "response_b", "label": "label"}
    data = DataConfig(name="generic", path=str(path), field_map=fm)
    cfg = SelfTrainConfig(run_dir=str(tmp_path / "run"), pool=data, heldout=data, traced_share=0.2)
    cfg.validate()
    assert split_data(Pipeline(cfg, tmp_path / "run")) == {"traced": 2, "labeled": 0, "unlabeled": 8, "heldout": 10}


def _prediction(example_id: str, swapped: bool, seed: int, label):
    return {"request_id": f"{example_id}:o{int(swapped)}:s{seed}", "prompt_id": f"{example_id}:o{int(swapped)}",
            "example_id": example_id, "seed": seed, "swapped": swapped, "label": "B" if swapped else "A",
            "verdict": {"label": label, "strength": None, "valid": label is not None}}


def test_pseudo_labels_come_from_the_verdicts_in_both_orders(tmp_path):
    """Four unlabeled pairs, two verdicts per order (the shown letters, before mapping back):

    u0  as-is A A, swapped B B → chosen better in every vote: kept, label A (right);
    u1  as-is B B, swapped A A → rejected better in every vote: kept, label B (wrong against the hidden label);
    u2  as-is A A, swapped A A → always the first position: inconsistent, dropped;
    u3  as-is A -, swapped B B → 3 of 4 agree (an unreadable vote counts against): kept at 0.75, dropped at 0.8.
    """
    cfg = _cfg(tmp_path, unlabeled_limit=4, min_agreement=0.75)
    p = Pipeline(cfg, tmp_path)
    split_data(p)
    unlabeled = [json.loads(x) for x in (tmp_path / "data" / "unlabeled.jsonl").read_text().splitlines()]
    ids = [f"generic:{r['id']}" for r in unlabeled]
    shown = {0: (["A", "A"], ["B", "B"]), 1: (["B", "B"], ["A", "A"]), 2: (["A", "A"], ["A", "A"]),
             3: (["A", None], ["B", "B"])}
    label_dir = tmp_path / "round_1" / "label"
    label_dir.mkdir(parents=True)
    rows = [_prediction(ids[i], swapped, s, v[s]) for i, orders in shown.items()
            for swapped, v in zip((False, True), orders) for s in range(2)]
    (label_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    books = write_pseudo_labels(p, 1)
    pseudo = (tmp_path / "round_1" / "pseudo.jsonl").read_text().splitlines()
    kept = {f"generic:{r['id']}": r for r in map(json.loads, pseudo)}
    assert set(kept) == {ids[0], ids[1], ids[3]}
    assert (kept[ids[0]]["label"], kept[ids[1]]["label"], kept[ids[3]]["label"]) == ("A", "B", "A")
    for i in (0, 1):  # response_a is the hidden-chosen response; the label says what the judge thought of it
        src = unlabeled[i]
        chosen = src["response_a"] if src["label"] == "A" else src["response_b"]
        assert kept[ids[i]]["response_a"] == chosen and kept[ids[i]]["context"] == src["context"]
    assert books["unlabeled_judged"] == 4 and books["pseudo_labeled"] == 3
    assert books["pseudo_accuracy"] == pytest.approx(2 / 3)
    assert books["mean_agreement"] == pytest.approx((1 + 1 + 0 + 0.75) / 4)  # u2: no majority at all

    # a resumed run reads the books back; a stricter threshold (a new run) drops u3
    assert write_pseudo_labels(p, 1) == books
    strict = Pipeline(replace(cfg, min_agreement=0.8), tmp_path / "strict")
    (tmp_path / "strict" / "round_1").mkdir(parents=True)
    (tmp_path / "strict" / "data").symlink_to(tmp_path / "data")
    (tmp_path / "strict" / "round_1" / "label").symlink_to(label_dir)
    assert write_pseudo_labels(strict, 1)["pseudo_labeled"] == 2
