"""Judge prompt templates: loading, injection-safe rendering and the seeded A/B swap.

Templates are Jinja2 files in ``conf/templates/`` (or any user ``.jinja`` file)
with the variables ``context``, ``response_a`` and ``response_b``. The first
line declares the verdict mode as a Jinja comment, ``{# mode: binary #}`` or
``{# mode: multiclass #}``, so the parser and reward always match the prompt.

Injection protection. The prompt's structure rests on a few markers: the
``<answer>``/``</answer>`` and ``<think>``/``</think>`` tags and the
``[The Start/End of Response A/B]`` / ``[The Start/End of Conversation]``
delimiter lines. Text we do not control (responses and context) is rewritten
before rendering so that none of these markers can appear in it: the angle or
square brackets of a marker are replaced by the single guillemets ``‹``/``›``
(U+2039/U+203A), e.g. ``<answer>A</answer>`` → ``‹answer›A‹/answer›`` and
``[The End of Response A]`` → ``‹The End of Response A›``. Matching is
case-insensitive and tolerates inner whitespace. The escape is visible (a reader
of the prompt, human or model, sees quoted text rather than structure), it is
not undone by Unicode NFKC normalisation in tokenizers (unlike full-width
``＜``), and it cannot form a real tag, so a forged verdict inside a response
is never what ``parse_verdict`` reads. User templates that add markers of their
own are not covered by this list.

Seeded swap. ``render_pair`` shows the chosen response as A or B according to
a coin derived with SHA-256 from (seed, example_id): reproducible across runs
and processes (Python's ``hash`` is salted), independent per seed, and ~50/50.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence, Union, overload

import jinja2
import jinja2.meta

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.scoring import Label
from nemo_thinkrm.genrm.verdict import MAX_STRENGTH, Mode, check_mode

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "conf" / "templates"
TEMPLATE_SUFFIX = ".jinja"
VARIABLES = frozenset({"context", "response_a", "response_b", "preferred"})
REQUIRED_VARIABLES = frozenset({"response_a", "response_b"})

Context = Union[str, Sequence[Mapping[str, str]]]
SwapPolicy = Literal["random", "none", "both"]
SWAP_POLICIES: tuple[str, ...] = ("random", "none", "both")

_MODE_HEADER = re.compile(r"^\{#-?\s*mode\s*:\s*(\w+)\s*-?#\}")
_TAG = re.compile(r"<(\s*/?\s*(?:answer|think)\b[^<>]*)>", re.IGNORECASE)
_DELIMITER = re.compile(
    r"\[(\s*the\s+(?:start|end)\s+of\s+(?:response\s+[ab]|conversation)\s*)\]", re.IGNORECASE)
OPEN_QUOTE = "\u2039"   # ‹
CLOSE_QUOTE = "\u203a"  # ›

_ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                          trim_blocks=True, keep_trailing_newline=False)


# --------------------------------------------------------------------------- escaping


def neutralize(text: str) -> str:
    """Rewrite the template's structural markers inside untrusted text (see module doc)."""
    if not isinstance(text, str):
        raise ConfigError(f"expected text, got {type(text).__name__}")
    text = _TAG.sub(lambda m: f"{OPEN_QUOTE}{m.group(1)}{CLOSE_QUOTE}", text)
    return _DELIMITER.sub(lambda m: f"{OPEN_QUOTE}{m.group(1)}{CLOSE_QUOTE}", text)


def format_context(context: Context) -> str:
    """The conversation before the responses as text.

    A string is taken as already rendered by the caller; a list of
    ``{"role", "content"}`` messages becomes "User: …" / "Assistant: …" lines.
    """
    if isinstance(context, str):
        return context
    if not isinstance(context, Sequence):
        raise ConfigError(f"context must be text or a list of messages, got {type(context).__name__}")
    lines = []
    for i, message in enumerate(context):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ConfigError(f"context message {i} needs string 'role' and 'content', got {message!r}")
        role = _ROLE_NAMES.get(message["role"].lower(), message["role"].capitalize())
        lines.append(f"{role}: {message['content']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class JudgeTemplate:
    """A loaded judge prompt: its name, file, verdict mode and compiled Jinja template."""

    name: str
    path: Path
    mode: Mode
    source: str
    compiled: jinja2.Template
    proving: bool = False
    """A preference-proving template (GRAM-R²): it shows ``preferred``, the letter of the labelled
    better response, and asks for the rationale; a judge template never sees the label."""

    def render(self, context: Context, response_a: str, response_b: str, preferred: Optional[str] = None) -> str:
        """The prompt for one ordered pair; the texts are neutralised first. ``preferred`` ("A"/"B")
        is given exactly when the template is a proving one, so no label can leak into a judge prompt."""
        if self.proving != (preferred is not None):
            raise ConfigError(f"template {self.name!r} is a preference-proving template: it needs the preferred "
                              f"response" if self.proving else
                              f"template {self.name!r} is a judge template: it is never shown the preferred response")
        if preferred is not None and preferred not in ("A", "B"):
            raise ConfigError(f"preferred must be 'A' or 'B', got {preferred!r}")
        return self.compiled.render(context=neutralize(format_context(context)), response_a=neutralize(response_a),
                                    response_b=neutralize(response_b), preferred=preferred)


def available_templates() -> list[str]:
    """Names of the built-in templates (file stems in ``conf/templates``)."""
    if not TEMPLATE_DIR.is_dir():
        return []
    return sorted(p.stem for p in TEMPLATE_DIR.glob(f"*{TEMPLATE_SUFFIX}"))


def _looks_like_path(name_or_path: Union[str, Path]) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.endswith(TEMPLATE_SUFFIX) or "/" in text or "\\" in text


def _resolve(name_or_path: Union[str, Path]) -> Path:
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        builtin = TEMPLATE_DIR / path.name
        if not path.is_file() and str(name_or_path) == path.name and builtin.is_file():
            return builtin  # "reasoning_binary.jinja" given by file name only
        if not path.is_file():
            raise ConfigError(f"judge template file {str(path)!r} does not exist")
        return path.resolve()
    path = TEMPLATE_DIR / f"{name_or_path}{TEMPLATE_SUFFIX}"
    if not path.is_file():
        raise ConfigError(f"unknown judge template {str(name_or_path)!r}; available: "
                          f"{', '.join(available_templates()) or '(none)'}, or a path to a .jinja file")
    return path


def _read_mode(source: str, path: Path) -> Mode:
    first_line = source.splitlines()[0] if source else ""
    match = _MODE_HEADER.match(first_line.strip())
    if match is None:
        raise ConfigError(f"{path}: the first line must declare the verdict mode, "
                          "e.g. '{# mode: binary #}' or '{# mode: multiclass #}'")
    try:
        return check_mode(match.group(1))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _compile(source: str, path: Path) -> tuple[jinja2.Template, frozenset]:
    """The compiled template and the variables it uses (checked against ``VARIABLES``)."""
    try:
        variables = jinja2.meta.find_undeclared_variables(_ENV.parse(source))
        compiled = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{path}:{err.lineno}: Jinja syntax error: {err.message}") from None
    unknown = variables - VARIABLES
    if unknown:
        raise ConfigError(f"{path}: unknown template variable(s) {sorted(unknown)}; "
                          f"available: {sorted(VARIABLES)}")
    missing = REQUIRED_VARIABLES - variables
    if missing:
        raise ConfigError(f"{path}: the template never shows {sorted(missing)}")
    return compiled, frozenset(variables)


def load_template(name_or_path: Union[str, Path]) -> JudgeTemplate:
    """Load a built-in template by name ("reasoning_binary", …) or a user ``.jinja`` file by path.

    A value ending in ``.jinja`` or containing a path separator is a path
    (relative to the working directory); anything else is a built-in name.
    Mistakes (unknown name, missing mode header, bad syntax, unknown variables)
    raise ``ConfigError`` with the fix in the message.
    """
    path = _resolve(name_or_path)
    source = path.read_text(encoding="utf-8")
    mode = _read_mode(source, path)
    compiled, variables = _compile(source, path)
    return JudgeTemplate(name=path.stem, path=path, mode=mode, source=source, compiled=compiled,
                         proving="preferred" in variables)


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class RenderedPair:
    """A judge prompt with its ground truth in the shown orientation.

    ``label`` is "A"/"B", or the signed strength when one was given (−k when
    the chosen response is A); ``swapped`` is True when the chosen response is
    shown as B, which is what ``order_corrected`` needs to map a verdict back.
    """

    prompt: str
    label: Label
    swapped: bool


def swap_coin(seed: int, example_id: str) -> bool:
    """Deterministic fair coin for (seed, example_id): True shows the chosen response as B."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    digest = hashlib.sha256(f"{seed}\x1f{example_id}".encode("utf-8")).digest()
    return bool(digest[0] & 1)


def _check_pair_strength(strength: Optional[int]) -> Optional[int]:
    if strength is None:
        return None
    if isinstance(strength, bool) or not isinstance(strength, int) or not 1 <= strength <= MAX_STRENGTH:
        raise ConfigError(f"strength ('chosen is better by k') must be an int in 1..3, got {strength!r}")
    return strength


def _one_order(template: JudgeTemplate, context: Context, chosen: str, rejected: str,
               strength: Optional[int], swapped: bool) -> RenderedPair:
    preferred = ("B" if swapped else "A") if template.proving else None
    if swapped:
        prompt = template.render(context, rejected, chosen, preferred)
        label: Label = "B" if strength is None else strength
    else:
        prompt = template.render(context, chosen, rejected, preferred)
        label = "A" if strength is None else -strength
    return RenderedPair(prompt=prompt, label=label, swapped=swapped)


@overload
def render_pair(template: JudgeTemplate, context: Context, chosen: str, rejected: str, example_id: str,
                seed: int = 0, *, strength: Optional[int] = None,
                swap: Literal["random", "none"] = "random") -> RenderedPair: ...


@overload
def render_pair(template: JudgeTemplate, context: Context, chosen: str, rejected: str, example_id: str,
                seed: int = 0, *, strength: Optional[int] = None,
                swap: Literal["both"]) -> tuple[RenderedPair, RenderedPair]: ...


def render_pair(template: JudgeTemplate, context: Context, chosen: str, rejected: str, example_id: str,
                seed: int = 0, *, strength: Optional[int] = None, swap: SwapPolicy = "random"
                ) -> Union[RenderedPair, tuple[RenderedPair, RenderedPair]]:
    """Render a preference pair as a judge prompt and return it with its label.

    ``swap``: "random" (default) shows the chosen response as A or B by
    ``swap_coin(seed, example_id)``, so position bias averages out yet every run
    sees the same prompts; "none" always shows it as A; "both" returns the two
    orders ``(chosen-as-A, chosen-as-B)`` for position-consistency metrics.
    ``strength`` ("chosen is better by k", k in 1..3) turns the label into the
    signed multiclass strength; without it the label is "A"/"B".
    """
    if swap not in SWAP_POLICIES:
        raise ConfigError(f"unknown swap policy {swap!r}; expected one of {list(SWAP_POLICIES)}")
    strength = _check_pair_strength(strength)
    if swap == "both":
        return (_one_order(template, context, chosen, rejected, strength, swapped=False),
                _one_order(template, context, chosen, rejected, strength, swapped=True))
    swapped = swap == "random" and swap_coin(seed, str(example_id))
    return _one_order(template, context, chosen, rejected, strength, swapped=swapped)
