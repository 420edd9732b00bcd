"""What every command shares: error handling, logging, input and config options, token files,
and the choice of scorer (a local model or a server). Command modules import from here only;
nothing here imports a command module.

Heavy modules (torch, transformers, trainers, grpc) are imported inside functions so `--help` is fast.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

logger = logging.getLogger("logllm_plugin.cli")


# ------------------------------------------------------------------------------ errors
def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or setup: shown as one clear line, never a traceback."""
    from logllm_plugin.artifacts import ModelDirError
    from logllm_plugin.config import ConfigError
    from logllm_plugin.encoder import EncoderUnavailable
    from logllm_plugin.learning.history import HistoryError
    from logllm_plugin.readers import InputError

    errors: list[type[BaseException]] = [ModelDirError, ConfigError, EncoderUnavailable, InputError, HistoryError]
    try:
        from trainers.small import TrainingDataError

        errors.append(TrainingDataError)
    except ImportError:  # trainers not installed: nothing to catch from it
        pass
    return tuple(errors)


def _llm_errors() -> tuple[type[BaseException], ...]:
    from logllm_plugin.analyzers.qwen import QwenUnavailable
    from logllm_plugin.small_llm import SmallLLMUnavailable
    from trainers.llm_data import LLMTrainingError

    return (LLMTrainingError, QwenUnavailable, SmallLLMUnavailable)


def run(fn, *args, llm: bool = False, **kwargs):
    """Call a command's work: bad input or setup (and with `llm`, a missing or unusable language
    model) ends in one clear line and exit status 1, never a traceback."""
    try:
        return fn(*args, **kwargs)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if llm and isinstance(exc, _llm_errors()):
            raise click.ClickException(str(exc)) from None
        raise


@contextlib.contextmanager
def server_errors(servers: str | Sequence[str]):
    """A failed gRPC call to `servers` as one line naming them and the status code."""
    import grpc

    try:
        yield
    except grpc.RpcError as exc:
        names = servers if isinstance(servers, str) else ", ".join(servers)
        raise click.ClickException(f"server {names}: {exc.code().name}: {exc.details()}") from None
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None


# ----------------------------------------------------------------------------- logging
def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # transformers prints weight-loading bars and notices on stderr; keep them quiet unless asked.
    if verbose < 2:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub, whatever a library tries


def use_json_logs(level: int = logging.INFO) -> None:
    """Long-running processes (serve, the bridge) log one JSON object per line."""
    from logllm_plugin.logfmt import JsonFormatter

    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    for name in ("logllm_plugin", "collectors"):  # our long-running processes report at INFO
        logging.getLogger(name).setLevel(min(level, root.level or level))


# ----------------------------------------------------------------------- input, config
def input_options(fn):
    fn = click.option("--format", "fmt", type=click.Choice(["sequence_jsonl", "sequence_json", "record_jsonl", "text"]),
                      help="Input format (sniffed when omitted).")(fn)
    fn = click.option("--line-regex", help="Text logs: regex with named groups key/timestamp/level/message.")(fn)
    fn = click.option("--key-regex", help=r"Text logs: the first match is the sequence key, e.g. 'blk_-?\d+'.")(fn)
    fn = click.option("--max-lines", type=click.IntRange(1),
                      help="Sequencer: close a sequence at this many lines (sequencer.max_lines; min_lines "
                           "follows it down unless set).")(fn)
    return fn


def config_option(fn):
    """`--config FILE` for every command with settings: CLI flags > LOGLLM_* environment > file > defaults."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="YAML config (see configs/plugin.yaml); LOGLLM_<SECTION>__<KEY> variables override it.")(fn)


def load_config(config_path: Optional[str], overrides: dict):
    from logllm_plugin.config import load_config as load

    return load(config_path, overrides=overrides, warn=lambda message: click.echo(f"warning: {message}", err=True))


def load_and_report(path: str, *, fmt, line_regex, key_regex, sequencer, split=None, fraction=None, shuffle_seed=None,
                    what="input"):
    """Sequences from a file or stdin, with one stderr line saying what was read and selected."""
    from logllm_plugin.inputs import Selection, load_input

    selection = Selection.parse(split, fraction, shuffle_seed)
    sequences, report = load_input(path, fmt=fmt, line_regex=line_regex, key_regex=key_regex,
                                   sequencer=sequencer, selection=selection)
    click.echo(f"{what}: {path}: {report.summary()}; {len(sequences)} sequences selected", err=True)
    return sequences


def read_token_file(path: Optional[str], option: str = "--token-file") -> Optional[str]:
    """The bearer token in `path` (None without a path); a missing, unreadable or empty file is one clear line."""
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise click.ClickException(f"{option} {path} is empty")
    return token


# ----------------------------------------------------------------------------- scoring
def exclusive_model_or_server(model_dir: Optional[str], servers) -> None:
    if servers and model_dir:
        raise click.UsageError("--model and --server exclude each other: the server has its model")


def sequence_scorer(model_dir: Optional[str], servers: Sequence[str], token_file: Optional[str],
                    tls_ca: Optional[str], timeout_s: float):
    """`score(list[LogSequence]) -> list[Verdict]` for the CLI's own commands (detect): the model
    in this process, or the server(s) with a failed call as one clear line."""
    exclusive_model_or_server(model_dir, servers)
    if not servers:
        from logllm_plugin.detector import load_detector

        return load_detector(model_dir).detect
    from logllm_plugin.client import InferenceClient

    client = InferenceClient(list(servers), token=read_token_file(token_file), tls_ca=tls_ca, timeout_s=timeout_s)

    def score(sequences):
        with server_errors(servers):
            return client.detect(sequences)

    return score


def integration_scorer(model_dir: Optional[str], servers: Sequence[str], token_file: Optional[str],
                       tls_ca: Optional[str], threads: Optional[int] = None):
    """(collectors.scoring.Scorer, the local detector or None) for the integrations (es, otel)."""
    from collectors.scoring import local_scorer, remote_scorer

    if threads is not None and servers:
        raise click.UsageError("--threads is for a local model only (the server has its own --threads)")
    exclusive_model_or_server(model_dir, servers)
    if servers:
        return remote_scorer(list(servers), token=read_token_file(token_file), tls_ca=tls_ca), None
    scorer = local_scorer(model_dir, threads=threads)
    return scorer, scorer.detector


def analysis_overrides(llm_dir: Optional[str], adapter_dir: Optional[str]) -> dict:
    """Config overrides for `--llm DIR [--adapter DIR]` (serve and analyze)."""
    if adapter_dir and not llm_dir:
        raise click.UsageError("--adapter needs --llm (the base model it adapts)")
    if not llm_dir:
        return {}
    return {"analysis": {"analyzer": "qwen", "llm_dir": llm_dir, "adapter_dir": adapter_dir}}


class Duration(click.ParamType):
    """`90`, `90s`, `15m`, `6h`, `1d` → seconds."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in self.UNITS else "s"
        number = text[:-1] if text[-1:] in self.UNITS else text
        try:
            seconds = float(number) * self.UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 90s, 15m, 6h, 1d)", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds
