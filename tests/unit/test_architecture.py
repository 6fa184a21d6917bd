"""The layering ARCHITECTURE.md promises, checked on the source: no import cycles between files
or packages, a torch-free config layer, and registries that agree with the config names."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from nemo_thinkrm.config.errors import ConfigError

PKG = Path(__file__).resolve().parents[2] / "nemo_thinkrm"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Internal modules ``name`` imports anywhere (module level or inside functions), minus TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in modules else node.module)
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_no_import_cycle_between_files():
    assert _cycles(_graph()) == []


def test_no_import_cycle_between_packages():
    def pkg(m: str) -> str:
        return ".".join(m.split(".")[:2])

    graph: dict[str, set[str]] = defaultdict(set)
    for a, targets in _graph().items():
        graph[pkg(a)] |= {pkg(b) for b in targets if pkg(b) != pkg(a)}
    assert _cycles(graph) == []


LAYERS = {  # ARCHITECTURE.md's table
    "config": 0, "runtime": 1, "genrm": 1, "metrics_log": 2, "models": 2, "data": 3, "checkpoint": 4,
    "training": 5, "algorithms": 5, "generation": 6, "trainers": 7, "evaluation": 7,
    "convert": 8, "recipes": 8, "cli": 9, "examples": 9, "__main__": 10,
}


def test_packages_import_only_from_lower_layers():
    def top(m: str) -> str:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else "__init__"

    wrong = sorted({(top(a), top(b)) for a, targets in _graph().items() for b in targets
                    if top(a) in LAYERS and top(b) in LAYERS and top(a) != top(b)
                    and LAYERS[top(b)] >= LAYERS[top(a)]})
    assert wrong == []
    assert {top(m) for m in _modules()} - {"__init__"} <= set(LAYERS)


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_config_layer_and_cli_start_without_torch():
    """The config layer is torch-free; the CLI imports torch, megatron and Hydra only once a stage runs."""
    code = ("import importlib, pkgutil, sys, nemo_thinkrm.config as c, nemo_thinkrm.cli; "
            "[importlib.import_module(f'nemo_thinkrm.config.{m.name}') for m in pkgutil.iter_modules(c.__path__)]; "
            "bad = [m for m in ('torch', 'megatron', 'transformers', 'hydra') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_private_name_is_imported_across_modules():
    private = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nemo_thinkrm"):
                private += [f"{p.relative_to(PKG)}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and a.name != "__version__"]
    assert private == []


def test_no_file_over_the_size_limit():
    too_long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 650}
    assert too_long == {}


def test_every_registry_entry_imports_and_is_what_its_kind_needs():
    """The tables are strings (torch-free names for the config layer): each must point at a real object."""
    from nemo_thinkrm.config.registry import ALL, ENGINES, ROLLOUT_ENGINES, STAGES
    from nemo_thinkrm.generation.interface import Generator, RolloutEngine

    for registry in ALL:
        for name in registry:
            assert registry.get(name) is not None, (registry.kind, name)
    assert all(issubclass(ENGINES.get(n), Generator) for n in ENGINES)
    assert all(issubclass(ROLLOUT_ENGINES.get(n), RolloutEngine) for n in ROLLOUT_ENGINES)
    assert all(callable(STAGES.get(n).load_runner()) for n in STAGES)


def test_registry_mechanism_errors():
    from nemo_thinkrm.config.registry import Registry

    reg = Registry("widget", {"a": "math:sqrt", "b": "math:floor"})
    assert reg.names() == ["a", "b"] and "a" in reg and reg.get("a")(4.0) == 2.0
    with pytest.raises(ConfigError, match=r"unknown widget 'c' \(widget_name\); valid names: \['a', 'b'\]"):
        reg.check("c", "widget_name")
    with pytest.raises(ValueError, match="module:attribute"):
        Registry("widget", {"a": "math.sqrt"})


@pytest.mark.parametrize("override, match", [
    ({"loss": {"kl_estimator": "k4"}}, "KL estimator 'k4'"),
    ({"loss": {"aggregation": "sum"}}, "aggregation 'sum'"),
    ({"loss": {"name": "ppo"}}, r"policy loss 'ppo' \(loss.name\)"),
    ({"loss": {"clip_eps": 0.0}}, "clip_eps must be in"),
    ({"loss": {"dual_clip_c": 0.5}}, "dual_clip_c must be > 1"),
    ({"ppo_epochs": 0}, "ppo_epochs"),
    ({"filters": ["drop_uniform"]}, r"batch filter 'drop_uniform' \(filters\)"),
])
def test_rl_options_fail_when_the_config_is_validated(override, match):
    from dataclasses import replace

    from nemo_thinkrm.config.rl import LossConfig
    from nemo_thinkrm.config.rl import GRPOConfig, PairwiseRLHFConfig

    for cls in (GRPOConfig, PairwiseRLHFConfig):
        options = {k: (LossConfig(**v) if k == "loss" else v) for k, v in override.items()}
        cfg = replace(cls(), global_batch_size=4, prompts_per_step=2, group_size=2, **options)
        with pytest.raises(ConfigError, match=match):
            cfg.validate()


def test_rollout_sampling_is_checked_when_the_config_is_validated():
    from dataclasses import replace

    from nemo_thinkrm.config.generation import GenerationConfig
    from nemo_thinkrm.config.rl import GRPOConfig

    cfg = replace(GRPOConfig(), global_batch_size=4, prompts_per_step=2, group_size=2,
                  generation=GenerationConfig(top_p=0.0))
    with pytest.raises(ConfigError, match="top_p"):
        cfg.validate()


ROOT_ALLOWED = {".ci", ".gitignore", "ARCHITECTURE.md", "LICENSE", "Makefile", "README.md", "bench", "conf",
                "constraints", "docs", "nemo_thinkrm", "pyproject.toml", "slurm", "tests", "tools"}


def test_the_root_holds_only_what_a_python_projects_root_holds():
    """A committed stray (once a file named ``optim.warmup_fraction=0``, a broken redirect's output) fails here."""
    repo = PKG.parent
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    top = {f.split("/", 1)[0] for f in files}
    assert top and top <= ROOT_ALLOWED, f"unexpected at the repository root: {sorted(top - ROOT_ALLOWED)}"


@pytest.mark.parametrize("override, match", [({"reward": "binray"}, "reward 'binray'"),
                                             ({"advantage": "rloo2"}, "advantage estimator 'rloo2'"),
                                             ({"reward_weights": {"binary": 1.0, "nope": 0.1}}, "'nope'")])
def test_grpo_names_fail_before_any_process_group(override, match, monkeypatch):
    from dataclasses import replace

    from nemo_thinkrm.config.rl import GRPOConfig
    from nemo_thinkrm.trainers import grpo

    def started(*a, **k):
        raise AssertionError("start_policy ran before the names were checked")

    monkeypatch.setattr(grpo, "start_policy", started)
    cfg = replace(GRPOConfig(), global_batch_size=4, prompts_per_step=2, group_size=2, **override)
    with pytest.raises(ConfigError, match=match):
        grpo.run(cfg)
