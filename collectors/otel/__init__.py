"""OpenTelemetry integration: the SDK log-record processor and the OTLP bridge for the Collector.

    from collectors.otel import LogLLMProcessor, ProcessorConfig
"""
from collectors.otel.processor import LogLLMProcessor, ProcessorConfig

__all__ = ["LogLLMProcessor", "ProcessorConfig"]
