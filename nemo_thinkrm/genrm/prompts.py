"""Judge prompts: every place that asks a judge (evaluation, GRPO, pairwise RLHF) builds them here.

The judge prompt is the template's text as the user turn, rendered with the judge's
chat template and Think-RM's ``<think>\\n`` opener. The chat rendering and the token
count come in as callables (``models/tokenizer.py: chat_renderer``), so this layer
needs no tokenizer library and the three callers cannot drift apart. Records whose
prompt is longer than the budget are counted and reported, never silently truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from nemo_thinkrm.genrm.templates import JudgeTemplate, render_pair

RenderChat = Callable[[list[dict[str, str]]], str]
"""Chat messages → the full prompt text a judge continues."""
CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class JudgePrompt:
    """One rendered orientation of one pair."""

    prompt_id: str
    """``<record id>:o0`` (first/only order) or ``:o1`` (second order with swap=both)."""
    example_id: str
    text: str
    """Full prompt text sent to the engine."""
    user_message: str
    label: Any
    """Ground truth in the orientation shown ("A"/"B", or signed strength for multiclass)."""
    swapped: bool
    section: str
    tags: dict = field(default_factory=dict)
    n_tokens: int = 0


def judge_text(user_message: str, render: RenderChat) -> str:
    """The prompt text for one judge user turn."""
    return render([{"role": "user", "content": user_message}])


def build_prompts(records: Sequence[Any], template: JudgeTemplate, render: RenderChat, count: CountTokens, *,
                  seed: int, swap: str) -> list[JudgePrompt]:
    """Preference records (``data/records.py``) → one prompt per record and shown order."""
    prompts = []
    for rec in records:
        strength = rec.strength_magnitude if template.mode == "multiclass" else None
        rendered = render_pair(template, [dict(m) for m in rec.context], rec.chosen, rec.rejected, rec.id,
                               seed=seed, strength=strength, swap=swap)
        orders = rendered if isinstance(rendered, tuple) else (rendered,)
        for k, r in enumerate(orders):
            text = judge_text(r.prompt, render)
            prompts.append(JudgePrompt(f"{rec.id}:o{k}", rec.id, text, r.prompt, r.label, r.swapped,
                                       rec.section, dict(rec.tags), count(text)))
    return prompts


def pair_prompt(template: JudgeTemplate, context: Any, response_a: str, response_b: str, render: RenderChat) -> str:
    """The prompt for a pair of fresh policy responses (no ground truth, order as given)."""
    return judge_text(template.render(context, response_a, response_b), render)


def split_over_length(prompts: Sequence[JudgePrompt], budget: int) -> tuple[list[JudgePrompt], list[str]]:
    keep, over = [], []
    for p in prompts:
        (over if p.n_tokens > budget else keep).append(p)
    return keep, sorted({p.example_id for p in over})
