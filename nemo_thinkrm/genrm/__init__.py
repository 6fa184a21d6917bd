"""Generative reward model (judge) logic shared by evaluation and RL, torch-free.

``verdict`` reads a judge's final ``<answer>`` block under Think-RM's strict
rules, ``scoring`` turns verdicts into accuracies, rewards, voting@m and
section roll-ups, and ``templates`` renders injection-safe judge prompts with a
reproducible A/B swap. Keeping these pure lets the offline evaluator and the
GRPO reward agree on exactly one definition of "the judge was right".
"""

from nemo_thinkrm.genrm.scoring import (
    MACRO_ROW,
    PER_SAMPLE_ROW,
    Label,
    ScoredSample,
    binary_label,
    binary_reward,
    flip_label,
    is_correct,
    judgebench_pair_accuracy,
    judgebench_pair_score,
    length_stats,
    multiclass_reward,
    order_pairs,
    orders_agree,
    position_consistency,
    rollup,
    sample_accuracy,
    score_sample,
    summarize,
    vote_accuracy,
    voting_accuracy,
)
from nemo_thinkrm.genrm.templates import (
    TEMPLATE_DIR,
    JudgeTemplate,
    RenderedPair,
    available_templates,
    format_context,
    load_template,
    neutralize,
    render_pair,
    swap_coin,
)
from nemo_thinkrm.genrm.verdict import (
    INVALID,
    TIE,
    Mode,
    Verdict,
    flip_verdict,
    last_answer_block,
    order_corrected,
    parse_verdict,
    strength_to_label,
)

__all__ = [
    "INVALID", "MACRO_ROW", "PER_SAMPLE_ROW", "TEMPLATE_DIR", "JudgeTemplate", "Label", "Mode",
    "RenderedPair", "ScoredSample", "TIE", "Verdict", "available_templates", "binary_label", "binary_reward",
    "flip_label", "flip_verdict", "format_context", "is_correct", "judgebench_pair_accuracy",
    "judgebench_pair_score", "last_answer_block", "length_stats", "load_template", "multiclass_reward",
    "neutralize", "order_corrected", "order_pairs", "orders_agree", "parse_verdict", "position_consistency",
    "render_pair", "rollup", "sample_accuracy", "score_sample", "strength_to_label", "summarize",
    "swap_coin", "vote_accuracy", "voting_accuracy",
]
