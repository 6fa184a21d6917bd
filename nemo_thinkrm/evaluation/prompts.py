"""Judge prompts (``genrm/prompts.py``) → generation requests, one per prompt × seed, minus those done."""

from __future__ import annotations

from typing import Optional, Sequence

from nemo_thinkrm.generation.interface import GenerationRequest
from nemo_thinkrm.genrm.prompts import JudgePrompt


def requests_for(prompts: Sequence[JudgePrompt], m: int, done: Optional[set[str]] = None,
                 chat: bool = False) -> list[GenerationRequest]:
    """Requests for seeds 0..m-1 of every prompt, minus those already in ``done`` (resume)."""
    done = done or set()
    out = []
    for p in prompts:
        for s in range(m):
            rid = request_id(p.prompt_id, s)
            if rid not in done:
                msgs = ({"role": "user", "content": p.user_message},) if chat else None
                out.append(GenerationRequest(rid, p.text, s, msgs))
    return out


def request_id(prompt_id: str, seed: int) -> str:
    return f"{prompt_id}:s{seed}"
