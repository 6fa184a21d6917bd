"""The judge as a cached generator: each distinct request is sent once, cache hits are not sent,
failures are not cached, and one client (one pool) serves every step of a run."""

from __future__ import annotations

from nemo_thinkrm.generation.interface import GenerationRequest
from nemo_thinkrm.generation.judge import CachedJudge
from nemo_thinkrm.generation.judge_cache import JudgeCache
from nemo_thinkrm.generation.openai_client import ClientConfig
from tests.fake_openai import FakeServer, in_thread


def _judge(server: FakeServer, cache: JudgeCache) -> CachedJudge:
    cfg = ClientConfig(endpoints=server.url, model="fake-model", max_retries=0, request_timeout_s=10)
    return CachedJudge(cfg, temperature=0.6, max_tokens=32, cache=cache)


def test_duplicates_and_cache_hits_are_not_sent_and_the_client_is_kept(tmp_path):
    with in_thread(FakeServer("j")) as server:
        judge = _judge(server, JudgeCache(tmp_path / "cache.jsonl"))
        try:
            step1 = [GenerationRequest("a", "prompt one", seed=1), GenerationRequest("b", "prompt two", seed=1),
                     GenerationRequest("a2", "prompt one", seed=1)]  # same prompt and seed as "a"
            out = judge.generate(step1)
            assert server.generations == 2
            assert [o.id for o in out] == ["a", "b", "a2"]
            assert [o.cached for o in out] == [False, False, True] and out[2].text == out[0].text == "j:prompt one"
            client = judge._client
            step2 = [GenerationRequest("b", "prompt two", seed=1), GenerationRequest("c", "prompt two", seed=2)]
            out2 = judge.generate(step2)
            assert server.generations == 3  # only the new seed went out
            assert [o.cached for o in out2] == [True, False]
            assert judge._client is client  # one client (session, pool, health loop) across steps
        finally:
            judge.close()
    # a new run reads the answers back from the file
    assert len(JudgeCache(tmp_path / "cache.jsonl")) == 3


def test_failed_requests_come_back_with_an_error_and_are_not_cached(tmp_path):
    server = FakeServer("j")
    server.always_status = 400
    with in_thread(server):
        cache = JudgeCache()
        judge = _judge(server, cache)
        try:
            out = judge.generate([GenerationRequest("x", "p", seed=0)])
            assert out[0].error and out[0].text == "" and not out[0].cached
            assert len(cache) == 0
        finally:
            judge.close()


def test_a_reading_rank_remembers_other_answers_without_writing(tmp_path):
    """Data-parallel judging: every asker reads the cache file, only rank 0 writes it, and answers
    another rank obtained are remembered so a later step does not ask for them again."""
    from nemo_thinkrm.generation.interface import GenerationOutput

    path = tmp_path / "cache.jsonl"
    with in_thread(FakeServer("j")) as server:
        reader = CachedJudge(ClientConfig(endpoints=server.url, model="fake-model", max_retries=0), 0.6, 32,
                             JudgeCache(path, write=False))
        try:
            req = GenerationRequest("r", "other rank's prompt", seed=3)
            reader.remember([req], [GenerationOutput("r", "from rank 1", 4, "stop")])
            assert reader.generate([req])[0].cached and server.generations == 0
            fresh = reader.generate([GenerationRequest("s", "mine", seed=1)])
            assert not fresh[0].cached and server.generations == 1
        finally:
            reader.close()
    assert not path.exists()  # the reading rank never wrote
