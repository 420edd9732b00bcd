"""Everything around an analyzer: masking, the per-signature cache, the rate limit, the fallback.

* Personal data is masked before the analyzer sees any text, so neither a prompt nor an
  explanation can carry an e-mail, an IP address or a token from the input.
* Explanations are cached by the sequence's template signature (template ids + category): a
  recurring incident is explained once; a cache hit re-quotes the current sequence's lines.
* The primary analyzer (an LLM) is rate limited with a token bucket; beyond the limit, and when it
  fails, the knowledge base answers and `status` says why.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable, Optional, Sequence

from logllm_plugin.analyzers.base import AnalysisItem, EvidenceLine, Explanation
from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer
from logllm_plugin.personal_data import PersonalDataMasker
from logllm_plugin.records import Verdict

logger = logging.getLogger(__name__)


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate_per_s, burst, clock
        self._tokens, self._last = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class AnalysisService:
    def __init__(
        self,
        *,
        primary=None,  # an Analyzer (e.g. QwenAnalyzer); None = the knowledge base answers everything
        knowledge_base: Optional[KnowledgeBaseAnalyzer] = None,
        masker: Optional[PersonalDataMasker] = None,
        signature: Optional[Callable[[Sequence[str]], tuple]] = None,
        cache_size: int = 1024,
        rate_per_s: float = 1.0,
        burst: int = 8,
    ):
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.knowledge_base = knowledge_base or KnowledgeBaseAnalyzer()
        self.primary = primary
        self.masker = masker or PersonalDataMasker()
        self._signature = signature
        self._cache: collections.OrderedDict[tuple, Explanation] = collections.OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._bucket = TokenBucket(rate_per_s, burst) if primary is not None else None

    @property
    def analyzer_name(self) -> str:
        return (self.primary or self.knowledge_base).name

    def explain(self, sequences: Sequence[Sequence[str]], verdicts: Sequence[Verdict]) -> list[Explanation]:
        """One explanation per sequence; normal verdicts get status `not_anomalous`."""
        if len(sequences) != len(verdicts):
            raise ValueError("one verdict per sequence")
        out: list[Optional[Explanation]] = [None] * len(sequences)
        todo: list[tuple[int, tuple, AnalysisItem]] = []
        for n, (lines, verdict) in enumerate(zip(sequences, verdicts)):
            if verdict.label != "anomalous":
                out[n] = Explanation("normal", "The detector scored this sequence normal; nothing to explain.",
                                     "", [], self.analyzer_name, status="not_anomalous")
                continue
            item = AnalysisItem(self.masker.mask_sequence(list(lines)), verdict)
            key = self._key(lines, verdict)
            hit = self._cached(key, item)
            if hit is not None:
                out[n] = hit
            else:
                todo.append((n, key, item))
        if todo:
            for (n, key, _), explanation in zip(todo, self._analyze([item for _, _, item in todo])):
                out[n] = explanation
                if explanation.status == "ok":
                    self._store(key, explanation)
        return out  # type: ignore[return-value]

    # -- analysis with fallback --------------------------------------------------------------------
    def _analyze(self, items: list[AnalysisItem]) -> list[Explanation]:
        if self.primary is None:
            return self.knowledge_base.explain_batch(items)
        allowed = [self._bucket.take() for _ in items]
        results: list[Optional[Explanation]] = [None] * len(items)
        chosen = [i for i, ok in enumerate(allowed) if ok]
        if chosen:
            try:
                answers = self.primary.explain_batch([items[i] for i in chosen])
            except Exception as exc:  # the analyzer must not take the caller down with it
                logger.error("analyzer %s failed: %s", self.primary.name, exc)
                answers = [self._fallback(items[i], "unavailable") for i in chosen]
            for i, answer in zip(chosen, answers):
                results[i] = answer
        for i, ok in enumerate(allowed):
            if not ok:
                results[i] = self._fallback(items[i], "rate_limited")
        return results  # type: ignore[return-value]

    def _fallback(self, item: AnalysisItem, status: str) -> Explanation:
        return dataclasses.replace(self.knowledge_base.explain(item), status=status)

    # -- cache -------------------------------------------------------------------------------------
    def _key(self, lines: Sequence[str], verdict: Verdict) -> tuple:
        signature = tuple(int(x) for x in self._signature(lines)) if self._signature else tuple(lines)
        return (signature, verdict.category)

    def _cached(self, key: tuple, item: AnalysisItem) -> Optional[Explanation]:
        if self._cache_size == 0:
            return None
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            self._cache.move_to_end(key)
        # Same templates, different values: quote this sequence's (masked) lines, same positions.
        evidence = [EvidenceLine(e.index, item.lines[e.index]) for e in hit.evidence if e.index < len(item.lines)]
        return dataclasses.replace(hit, evidence=evidence, cached=True)

    def _store(self, key: tuple, explanation: Explanation) -> None:
        if self._cache_size == 0:
            return
        with self._cache_lock:
            self._cache[key] = explanation
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def build_analysis_service(config, signature: Optional[Callable[[Sequence[str]], tuple]] = None,
                           encoder=None) -> AnalysisService:
    """The service a config asks for (`analysis` section); the LLM loads only when configured.

    `encoder`: the detector's LineEncoder, shared by the knowledge base's classification by meaning.
    """
    extra = []
    for spec in config.mask_patterns:
        kind, _, regex = spec.partition("=")
        extra.append((kind, regex))
    knowledge_base = KnowledgeBaseAnalyzer(config.knowledge_base, encoder=encoder)
    primary = None
    if config.analyzer == "qwen":
        from logllm_plugin.analyzers.qwen import QwenAnalyzer

        primary = QwenAnalyzer(config.llm_dir, adapter_dir=config.adapter_dir, fallback=knowledge_base,
                               device=config.device, max_new_tokens=config.max_new_tokens, timeout_s=config.timeout_s,
                               batch_size=config.batch_size, threads=config.threads, quantize=config.quantize)
    elif config.analyzer == "openai":
        from logllm_plugin.analyzers.openai_compat import OpenAIAnalyzer

        primary = OpenAIAnalyzer(config.base_url, config.model, fallback=knowledge_base, api_key_env=config.api_key_env,
                                 timeout_s=config.timeout_s, max_new_tokens=config.max_new_tokens,
                                 response_format=config.response_format)
    return AnalysisService(primary=primary, knowledge_base=knowledge_base, masker=PersonalDataMasker(extra),
                           signature=signature, cache_size=config.cache_size, rate_per_s=config.rate_per_s,
                           burst=config.burst)
