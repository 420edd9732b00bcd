"""A local Qwen chat model (optionally with a LoRA adapter from `train llm`) as an analyzer.

Every item gets an explanation: the model's when it answers valid JSON in time, otherwise the
fallback analyzer's, marked with why (`invalid_output`, `timeout`, `unavailable`). The model is
loaded on first use (or by `load()`), from local files only, weights as safetensors only.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from logllm_plugin.analyzers.base import AnalysisItem, Analyzer, EvidenceLine, Explanation
from logllm_plugin.artifacts import require_safetensors_weights
from logllm_plugin.analyzers.prompt import (ANSWER_PREFIX, DEFAULT_MAX_LINE_CHARS, DEFAULT_MAX_LINES,
                                            DEFAULT_MAX_NEW_TOKENS, InvalidAnswer, build_messages, generation_prompt,
                                            parse_answer, repair_messages)

logger = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class QwenUnavailable(RuntimeError):
    """The model cannot be loaded or run here; the message names the missing piece."""


def require_4bit_support() -> None:
    """4-bit weights need bitsandbytes, which needs CUDA: say which of the two is missing."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise QwenUnavailable("4-bit loading needs a CUDA GPU (bitsandbytes), and none is available here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QwenUnavailable("4-bit loading needs the bitsandbytes package: pip install 'logllm-plugin[gpu]'")


def prefer_passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning; call before torch is imported.

    A small model decodes one token at a time: every layer ends in an OpenMP barrier. With the
    default busy-wait, a thread whose partner is descheduled (other processes on a 2-core host)
    spins through its time slice: SmolLM2 decoding measured 1.19 s/token with 2 threads beside
    other jobs, 0.18 s/token with OMP_WAIT_POLICY=PASSIVE, on the same host in the same minute.
    An explicit OMP_WAIT_POLICY in the environment wins.
    """
    import os
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_torch_threads(threads: int) -> None:
    """torch intra-op threads for the calling thread (OpenMP keeps the setting per thread)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise QwenUnavailable(f"device {device!r} requested but CUDA is not available")
    return device


# What an adapter's base must share with the model it is loaded onto (written by `train llm`).
BASE_FINGERPRINT_FILE = "logllm_base.json"
_FINGERPRINT_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "intermediate_size", "vocab_size")


def base_fingerprint(config) -> dict[str, Any]:
    """The architecture figures of a model config that an adapter depends on."""
    values = config if isinstance(config, dict) else config.to_dict()
    return {k: values.get(k) for k in _FINGERPRINT_KEYS}


def check_chat_model_dir(model_path: Path, what: str, error: type[Exception]) -> None:
    """Raise `error` naming the problem when `model_path` is not a loadable local chat model.

    Checked before any from_pretrained so that a wrong directory costs no load and never
    reaches pickle (.bin) or the hub: config.json, safetensors weights, a tokenizer with a chat template.
    """
    import json

    if not model_path.is_dir():
        raise error(f"{what} directory {model_path} does not exist")
    ggufs = sorted(p.name for p in model_path.glob("*.gguf"))
    if not (model_path / "config.json").is_file():
        if ggufs:
            raise error(f"{what} directory {model_path} holds only GGUF weights ({', '.join(ggufs)}): convert them "
                        f"to a safetensors model directory with `logllm-plugin dev small-llm --gguf "
                        f"{model_path / ggufs[0]} --out DIR`")
        raise error(f"{what} directory {model_path} has no config.json (not a local model checkout)")
    require_safetensors_weights(model_path, what, error)
    template_file = model_path / "chat_template.jinja"
    tokenizer_config = model_path / "tokenizer_config.json"
    has_template = template_file.is_file() or (model_path / "chat_template.json").is_file()
    if not has_template and tokenizer_config.is_file():
        try:
            has_template = bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, ValueError):
            has_template = False
    if not tokenizer_config.is_file() and not (model_path / "tokenizer.json").is_file():
        raise error(f"{what} directory {model_path} has no tokenizer (tokenizer.json / tokenizer_config.json)")
    if not has_template:
        raise error(f"the tokenizer in {model_path} has no chat template (chat_template.jinja or "
                    "tokenizer_config.json's chat_template): use an instruct/chat model")


def check_adapter_fits(adapter_path: Path, model_config, error: type[Exception]) -> None:
    """Raise `error` when the adapter was trained on a base with another architecture."""
    import json

    fingerprint_file = adapter_path / BASE_FINGERPRINT_FILE
    if not fingerprint_file.is_file():
        return  # adapters from elsewhere: peft's own shape check (wrapped by the caller) decides
    try:
        trained_on = json.loads(fingerprint_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"adapter {adapter_path}: {BASE_FINGERPRINT_FILE} is unreadable ({exc})") from None
    here = base_fingerprint(model_config)
    differ = [f"{k} {trained_on.get(k)} vs {here.get(k)}" for k in _FINGERPRINT_KEYS if trained_on.get(k) != here.get(k)]
    if differ:
        raise error(f"adapter {adapter_path} was trained for another base model ({'; '.join(differ)}; "
                    "adapter vs this base): pass the --llm/--base it was trained on")


# Linear layers that stay float32 under `quantize: int8`. Dynamic quantisation also rounds each
# layer's input to int8 with one scale per token; the input of an MLP's down projection
# (silu(gate) * up) has outlier channels that such a scale crushes. Measured on SmolLM2 with the
# `train llm` adapter, 8 held-out padded anomalies: every linear int8 -> 1 valid answer of 8;
# all but down_proj and lm_head int8 -> 6 of 8; float32 -> 7 of 8 (the base model's answers did
# not show it). lm_head (the 49k-vocabulary projection) picks every token: kept exact too.
FLOAT_LINEARS = ("down_proj", "lm_head")


def quantize_int8(model):
    """Linear layers int8 with one scale per output channel (per-tensor scales garble SmolLM2's
    answers), except the FLOAT_LINEARS."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in FLOAT_LINEARS}
    with warnings.catch_warnings():  # torch.ao's deprecation notice, once per layer
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec)


def load_chat_model(model_dir: Union[str, Path], *, adapter_dir: Union[str, Path, None] = None,
                    device: str = "auto", load_in_4bit: bool = False, trainable: bool = False,
                    quantize: str = "none"):
    """(model, tokenizer, device) from local directories: base weights, optional peft adapter.

    `quantize="int8"` (CPU inference only): the adapter is merged into the weights and every
    linear layer is quantised to int8 per output channel (torch dynamic quantisation). Decoding on a CPU is bound by
    reading the weights, so a quarter of the bytes is about 2.5x faster (measured on SmolLM2).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_path = Path(model_dir)
    adapter_path = Path(adapter_dir) if adapter_dir else None
    if adapter_path is not None and not (adapter_path / "adapter_config.json").is_file():
        raise QwenUnavailable(f"adapter directory {adapter_path} has no adapter_config.json")
    # Before any from_pretrained: transformers and peft would otherwise fall back to pickled .bin
    # weights (torch.load) or to the hub.
    if adapter_path is not None:
        require_safetensors_weights(adapter_path, "adapter", QwenUnavailable)
    check_chat_model_dir(model_path, "model", QwenUnavailable)
    if quantize not in ("none", "int8"):
        raise QwenUnavailable(f"quantize must be none or int8, got {quantize!r}")
    if load_in_4bit:
        require_4bit_support()
    resolved = resolve_device(device)
    kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": True}
    if resolved.startswith("cuda"):
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32  # half precision matmuls are slow or missing on CPUs
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
        kwargs["device_map"] = {"": resolved}
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if not load_in_4bit:
        model = model.to(resolved)
    if adapter_path is not None:
        from peft import PeftModel

        check_adapter_fits(adapter_path, model.config, QwenUnavailable)
        try:
            model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=trainable)
        except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatch, unknown target modules
            raise QwenUnavailable(f"adapter {adapter_path} does not fit the base model {model_path} "
                                  f"(trained for another base?): {str(exc).splitlines()[0][:300]}") from None
    # Training saves the tokenizer next to the adapter: prefer it, it is the one the adapter saw.
    tokenizer_path = adapter_path if adapter_path and (adapter_path / "tokenizer_config.json").is_file() else model_path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise QwenUnavailable(f"the tokenizer in {tokenizer_path} has no chat template")
    if not trainable:
        model.eval()
        if quantize == "int8" and resolved == "cpu" and not load_in_4bit:
            if adapter_path is not None:
                model = model.merge_and_unload()  # quantised layers cannot carry LoRA branches
            model = quantize_int8(model)
    return model, tokenizer, resolved


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the generation config's eos ids, the tokenizer's, <|im_end|>."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")):
        for i in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id and i not in ids:
                ids.append(i)
    return ids


@dataclass
class Generated:
    text: str
    finished: bool  # ended with a stop token (not cut by max_new_tokens or the deadline)
    timed_out: bool  # cut by the deadline


def json_object_end(text: str) -> Optional[int]:
    """Index just past the first complete top-level JSON object in `text` (strings and escapes honoured), else None."""
    depth, in_string, escaped = 0, False, False
    for k, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:
                return k + 1 if ch == "}" and depth == 0 else None
    return None


def _stop_criteria(deadline: float, tokenizer, prompt_width: int):
    """Stops every row at the deadline, and each row once its JSON answer object is closed.

    A small model that has written the object often goes on (a second object, prose) until
    max_new_tokens: what follows the object is never used, so those tokens are pure latency.
    """
    import torch
    from transformers import StoppingCriteria

    class AnswerCriteria(StoppingCriteria):
        def __init__(self) -> None:
            self.fired = False
            self.first_token_at: Optional[float] = None  # called after every token: the first call ends prefill
            self.closed: dict[int, int] = {}  # row -> new tokens when its object closed

        def __call__(self, input_ids, scores, **kwargs):
            now = time.monotonic()
            if self.first_token_at is None:
                self.first_token_at = now
            self.fired = self.fired or now >= deadline
            done = []
            n_new = input_ids.shape[1] - prompt_width
            for row in range(input_ids.shape[0]):
                if row not in self.closed and n_new > 0 and int(input_ids[row, -1]) in _CLOSING_CACHE.get(id(tokenizer), ()):
                    text = ANSWER_PREFIX + tokenizer.decode(input_ids[row, prompt_width:], skip_special_tokens=True)
                    if json_object_end(text) is not None:
                        self.closed[row] = n_new
                done.append(self.fired or row in self.closed)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    if id(tokenizer) not in _CLOSING_CACHE:
        # Only a token containing "}" can close the object: decode-and-scan after those alone.
        vocab = tokenizer.get_vocab()
        _CLOSING_CACHE[id(tokenizer)] = frozenset(i for piece, i in vocab.items() if "}" in piece)
    return AnswerCriteria()


_CLOSING_CACHE: dict[int, frozenset[int]] = {}


def generate_answers(model, tokenizer, conversations: Sequence[list[dict[str, str]]], *, max_new_tokens: int,
                     deadline: float, device: str, stats: Optional[list[dict[str, Any]]] = None) -> list[Generated]:
    """Greedy answers to a batch of chat conversations, stopped early at the deadline.

    A row ends at a stop token or where its JSON object closes (`finished`); what the model would
    write after the object is not generated. With `stats`, appends {rows, prompt_tokens,
    generated_tokens, prefill_s, decode_s} for the call (prompt tokens without padding; prefill_s
    until the first new token).
    """
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    prompts = [generation_prompt(tokenizer, c) for c in conversations]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    stops = stop_token_ids(model, tokenizer)
    # Greedy (the answer is a fixed-format record, not prose to vary) with the KV cache: each new
    # token attends to the cached keys/values instead of recomputing the prompt.
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                              pad_token_id=tokenizer.pad_token_id, use_cache=True)
    width = encoded["input_ids"].shape[1]
    criteria = _stop_criteria(deadline, tokenizer, width)
    started = time.monotonic()
    with torch.inference_mode():
        output = model.generate(**encoded, generation_config=config, stopping_criteria=StoppingCriteriaList([criteria]))
    ended = time.monotonic()
    new_tokens = output[:, width:].tolist()
    results = []
    generated = 0
    for n, row in enumerate(new_tokens):
        end = next((k for k, t in enumerate(row) if t in stops), None)
        if n in criteria.closed and (end is None or criteria.closed[n] <= end):
            end = criteria.closed[n]
            text = ANSWER_PREFIX + tokenizer.decode(row[:end], skip_special_tokens=True)
            cut = json_object_end(text)
            text = text[:cut] if cut else text
            generated += end
        else:
            generated += (end + 1) if end is not None else len(row)
            text = ANSWER_PREFIX + tokenizer.decode(row[:end] if end is not None else row, skip_special_tokens=True)
        results.append(Generated(text=text, finished=end is not None, timed_out=criteria.fired and end is None))
    if stats is not None:
        first = criteria.first_token_at or ended
        stats.append({"rows": len(new_tokens), "prompt_tokens": int(encoded["attention_mask"].sum()),
                      "generated_tokens": generated, "prefill_s": first - started, "decode_s": ended - first})
    return results


def fallback_explanations(fallback: Analyzer, items: Sequence[AnalysisItem], status: str) -> list[Explanation]:
    """The fallback's explanations marked with `status`; a minimal one from the verdict if the fallback fails."""
    name = getattr(fallback, "name", "") or "fallback"
    try:
        answers = list(fallback.explain_batch(list(items)))
        if len(answers) != len(items):
            raise RuntimeError(f"fallback returned {len(answers)} explanations for {len(items)} items")
        return [dataclasses.replace(a, status=status, analyzer=a.analyzer or name) for a in answers]
    except Exception:  # the last line of defence: explain_batch of the caller must not raise
        logger.exception("fallback analyzer %s failed; answering from the verdicts alone", name)
        return [Explanation(
            category=item.verdict.category or "anomaly",
            summary="The detector flagged this sequence as anomalous; no explanation is available.",
            suggestion="Inspect the evidence lines and the surrounding logs.",
            evidence=[EvidenceLine(i, item.lines[i]) for i in item.verdict.evidence if 0 <= i < len(item.lines)],
            analyzer=name, status=status) for item in items]


class QwenAnalyzer:
    """Explanations from a local Qwen chat model, with a fallback analyzer for what it cannot answer."""

    name = "qwen"

    def __init__(self, model_dir: Union[str, Path], *, adapter_dir: Union[str, Path, None] = None,
                 fallback: Analyzer, device: str = "auto", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, timeout_s: float = 30.0,
                 batch_size: int = 4, load_in_4bit: bool = False, max_lines: int = DEFAULT_MAX_LINES,
                 max_line_chars: int = DEFAULT_MAX_LINE_CHARS, threads: Optional[int] = None,
                 quantize: str = "int8") -> None:
        if not str(model_dir):
            raise ValueError("model_dir must name a local model directory")
        if not callable(getattr(fallback, "explain_batch", None)):
            raise ValueError("fallback must be an analyzer (with explain_batch)")
        if not _DEVICE.match(device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_lines < 1 or max_line_chars < 8:
            raise ValueError("max_lines must be >= 1 and max_line_chars >= 8")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if quantize not in ("none", "int8"):
            raise ValueError(f"quantize must be none or int8, got {quantize!r}")
        if load_in_4bit:
            require_4bit_support()  # impossible here: say so now, not on the first request
        self.threads = threads
        self.quantize = quantize
        # One entry per generate call (see generate_answers); `bench analyze` reads and clears it.
        self.generation_stats: list[dict[str, Any]] = []
        self.model_dir = Path(model_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.fallback = fallback
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.load_in_4bit = load_in_4bit
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self._model = None
        self._tokenizer = None
        self._resolved_device = "cpu"
        self._load_error: Optional[str] = None
        # One generation at a time: the model and tokenizer state are shared.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load now (e.g. at service start) instead of on the first request. Raises QwenUnavailable."""
        if self._model is not None:
            return
        if self._load_error is not None:
            # A broken model directory does not heal between requests: do not pay the load again.
            raise QwenUnavailable(self._load_error)
        try:
            self._model, self._tokenizer, self._resolved_device = load_chat_model(
                self.model_dir, adapter_dir=self.adapter_dir, device=self.device, load_in_4bit=self.load_in_4bit,
                quantize=self.quantize)
        except Exception as exc:
            self._load_error = f"cannot load the Qwen model from {self.model_dir}: {exc}"
            raise QwenUnavailable(self._load_error) from exc
        logger.info("Qwen analyzer loaded %s%s on %s", self.model_dir,
                    f" + adapter {self.adapter_dir}" if self.adapter_dir else "", self._resolved_device)

    # ---------------------------------------------------------------- explaining
    def explain_batch(self, items: Sequence[AnalysisItem]) -> list[Explanation]:
        items = list(items)
        if not items:
            return []
        deadline = time.monotonic() + self.timeout_s
        answers: list[Optional[Explanation]] = [None] * len(items)
        failed: dict[int, str] = {}
        try:
            self.load()
            if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                failed.update({i: "timeout" for i in range(len(items))})
            else:
                try:
                    if self.threads:
                        set_torch_threads(self.threads)
                    self._explain_with_model(items, deadline, answers, failed)
                finally:
                    self._lock.release()
        except QwenUnavailable as exc:
            logger.warning("%s; using the fallback", exc)
        except Exception:
            logger.exception("Qwen generation failed; using the fallback")
        for i in range(len(items)):
            if answers[i] is None and i not in failed:
                failed[i] = "unavailable"
        for status in sorted(set(failed.values())):
            indexes = [i for i, s in failed.items() if s == status]
            for i, explanation in zip(indexes, fallback_explanations(self.fallback, [items[i] for i in indexes], status)):
                answers[i] = explanation
        return [a for a in answers if a is not None]

    def _explain_with_model(self, items: list[AnalysisItem], deadline: float,
                            answers: list[Optional[Explanation]], failed: dict[int, str]) -> None:
        conversations = [build_messages(item, max_lines=self.max_lines, max_line_chars=self.max_line_chars)
                         for item in items]
        to_repair: dict[int, list[dict[str, str]]] = {}
        started = time.monotonic()
        self._run_round(items, conversations, list(range(len(items))), deadline, answers, failed,
                        on_invalid=lambda i, text, error: to_repair.__setitem__(
                            i, repair_messages(conversations[i], text, error)))
        if not to_repair:
            return
        # A repair costs about what a first answer cost. One that cannot finish before the deadline
        # would only burn the time: the answer stays invalid (the reason it falls back).
        per_batch = (time.monotonic() - started) / max(1, math.ceil(len(items) / self.batch_size))
        needed = per_batch * math.ceil(len(to_repair) / self.batch_size)
        if time.monotonic() + needed > deadline:
            logger.debug("no time to repair %d invalid answers", len(to_repair))
            failed.update({i: "invalid_output" for i in to_repair})
            return
        logger.debug("repairing %d invalid answers", len(to_repair))
        self._run_round(items, to_repair, sorted(to_repair), deadline, answers, failed,
                        on_invalid=lambda i, text, error: failed.__setitem__(i, "invalid_output"),
                        timeout_status="invalid_output")

    def _run_round(self, items, conversations, indexes: list[int], deadline: float,
                   answers: list[Optional[Explanation]], failed: dict[int, str], on_invalid,
                   timeout_status: str = "timeout") -> None:
        """One generation per index; `timeout_status` for those the deadline cuts (a repair cut
        short is still an invalid answer)."""
        for start in range(0, len(indexes), self.batch_size):
            batch = indexes[start:start + self.batch_size]
            if time.monotonic() >= deadline:
                failed.update({i: timeout_status for i in indexes[start:]})
                return
            generated = generate_answers(self._model, self._tokenizer, [conversations[i] for i in batch],
                                         max_new_tokens=self.max_new_tokens, deadline=deadline,
                                         device=self._resolved_device, stats=self.generation_stats)
            for i, result in zip(batch, generated):
                lines = items[i].lines
                try:
                    parsed = parse_answer(result.text, len(lines))
                except InvalidAnswer as exc:
                    if result.timed_out:
                        failed[i] = timeout_status
                    elif not result.finished:
                        # Cut at max_new_tokens: the model was rambling, and a retry under the same
                        # limit (with a longer prompt) rambles as long again. Only an answer that
                        # ended by itself but breaks the schema is worth one repair.
                        failed[i] = "invalid_output"
                    else:
                        on_invalid(i, result.text, str(exc))
                    continue
                answers[i] = Explanation(
                    category=parsed["category"], summary=parsed["summary"], suggestion=parsed["suggestion"],
                    evidence=[EvidenceLine(e, lines[e]) for e in parsed["evidence"]], analyzer=self.name, status="ok")
