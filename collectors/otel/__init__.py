"""OpenTelemetry integration: the SDK log-record processor and the OTLP bridge for the Collector.

    from collectors.otel import LogLLMProcessor
"""
from collectors.otel.processor import LogLLMProcessor

__all__ = ["LogLLMProcessor"]
