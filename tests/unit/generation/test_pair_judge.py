"""The one generative pair judge (``generation/judge.PairJudge``) that best-of-N and pairwise RLHF ask through:
prompts in the judge's chat template, over-length pairs never sent, verdicts and health counted by hand."""

from __future__ import annotations

from nemo_thinkrm.config.model import TokenizerConfig
from nemo_thinkrm.generation.interface import GenerationOutput
from nemo_thinkrm.generation.judge import PairJudge
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.genrm.prompts import pair_prompt
from nemo_thinkrm.models.tokenizer import chat_renderer, load_tokenizer


def test_pair_judge_sends_what_fits_and_counts_every_outcome():
    tok = load_tokenizer(TokenizerConfig())
    template = load_template("compact_binary")
    replies = iter(["<answer>B</answer>", "no verdict here", None])
    sent = []

    def ask(requests):
        sent.extend(requests)
        out = []
        for r in requests:
            text = next(replies)
            out.append(GenerationOutput(r.id, text or "", 5, "stop") if text is not None
                       else GenerationOutput(r.id, "", 0, "error", error="HTTP 503"))
        return out

    render, count = chat_renderer(tok, False)
    short = [{"role": "user", "content": "What is 2 + 3?"}]
    limit = count(pair_prompt(template, short, "5", "6", render))
    judge = PairJudge(template, tok, False, ask, max_prompt_tokens=limit)
    long_answer = "5 " * 200
    requests = [judge.request("r0", short, "5", "6"), judge.request("r1", short, long_answer, "6"),
                judge.request("r2", short, "6", "5", seed=7), judge.request("r3", short, "5", "7")]
    assert requests[1] is None  # over length: never sent
    assert requests[0].prompt == pair_prompt(template, short, "5", "6", render)
    assert requests[2].seed == 7 and requests[0].seed == judge.request("again", short, "5", "6").seed
    judged = judge.judge(requests)
    assert [r.id for r in sent] == ["r0", "r2", "r3"]
    assert [j.status for j in judged] == ["ok", "over_length", "invalid", "failed"]
    assert judged[0].verdict.label == "B" and not judged[2].verdict.valid and not judged[3].verdict.valid
    assert dict(judge.stats) == {"requests": 3, "ok": 1, "invalid": 1, "failed": 1, "over_length": 1,
                                 "output_tokens": 10}
