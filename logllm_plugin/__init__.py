"""logllm-plugin: sequence-level log anomaly detection for OpenTelemetry and Elasticsearch stacks.

This module must stay importable without torch (DESIGN §2): model code loads on first use.
"""
__version__ = "0.1.0"

from logllm_plugin.records import LogRecord, LogSequence, Verdict  # noqa: E402

__all__ = ["LogRecord", "LogSequence", "Verdict", "__version__"]
