"""A scripted teacher for the embedded arithmetic-judging task (quickstart and tests only).

Think-RM's warm-up traces come from a strong LLM teacher; on a CPU-only machine with no
model downloads, the quickstart uses this stand-in instead and says so in its report. It
reads the question and the two responses back out of the rendered judge prompt, recomputes
the result, and writes the trace a careful judge would (``data/synthetic.py`` wording), so
the traces always match what the judge saw, including the A/B swap. Prompts it cannot
read get an error output (counted, never dropped), like any engine's failures.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.data.synthetic import scripted_trace
from nemo_thinkrm.generation.interface import GenerationOutput, GenerationRequest, Generator

_QUESTION = re.compile(r"What is (-?\d+) ([+\-*]) (-?\d+)\?")
_RESPONSE = re.compile(r"\[The Start of Response ([AB])\]\n(.*?)\n\[The End of Response \1\]", re.S)


class ScriptedTeacher(Generator):
    def __init__(self, cfg: GenerationConfig, model_path: Optional[str] = None) -> None:
        self.cfg = cfg

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        return [self._one(r) for r in requests]

    def _one(self, r: GenerationRequest) -> GenerationOutput:
        q = _QUESTION.search(r.prompt)
        responses = dict(_RESPONSE.findall(r.prompt))
        if q is None or set(responses) != {"A", "B"}:
            return GenerationOutput(r.id, "", 0, "error", error="scripted teacher: not an arithmetic judging prompt")
        a, op, b = int(q.group(1)), q.group(2), int(q.group(3))
        text = scripted_trace(a, op, b, responses["A"], responses["B"])
        return GenerationOutput(r.id, text, len(text.split()), "stop")
