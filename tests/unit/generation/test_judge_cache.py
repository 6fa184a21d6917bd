"""The pairwise-RLHF judge cache: keys, persistence, a torn last line. (Steps of the tiny pairwise-RLHF
recipe against a real vLLM CPU judge server run in ``tests/e2e/test_quickstart.py``, the
quickstart's pairwise stage; a dead judge in ``tests/rl/test_pairwise_judge_failure.py``.)"""

from __future__ import annotations


def test_judge_cache_roundtrip(tmp_path):
    from nemo_thinkrm.generation.judge_cache import JudgeCache, cache_key

    k1 = cache_key("prompt", {"temperature": 0.6, "seed": 1})
    assert k1 != cache_key("prompt", {"temperature": 0.6, "seed": 2}) != cache_key("prompt2", {})
    c = JudgeCache(tmp_path / "c.jsonl")
    c.put(k1, {"text": "<answer>A</answer>", "tokens": 3, "error": None, "latency_s": 0.1})
    with open(tmp_path / "c.jsonl", "a") as f:
        f.write('{"key": "torn')  # an interrupted write
    again = JudgeCache(tmp_path / "c.jsonl")
    assert len(again) == 1 and again.get(k1)["text"] == "<answer>A</answer>" and again.hits == 1
    assert again.get("missing") is None
