// Package logllmprocessor is an OpenTelemetry Collector processor (type `logllm`, logs, alpha)
// that groups log records into sequences by key, scores each closed sequence through a
// logllm-plugin inference server (logllm.v1.Inference/Detect) and writes the logllm.*
// attributes into every record before passing it on, exactly once and in order per key.
// It behaves like the Python SDK processor in collectors/otel/processor.py; see README.md.
package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"
