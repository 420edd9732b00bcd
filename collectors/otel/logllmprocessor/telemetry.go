package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/component"
)

// processorTelemetry: the processor's own metrics, through the collector's telemetry settings
// (they appear beside the collector's own, e.g. on its Prometheus endpoint).
type processorTelemetry struct {
	held         metric.Int64UpDownCounter
	records      metric.Int64Counter // records passed on, by logllm.status
	sequences    metric.Int64Counter // sequences passed on, by logllm.status
	scored       metric.Int64Counter // sequences that got a verdict
	callDuration metric.Float64Histogram
	downstream   metric.Int64Counter // records the next consumer refused (logged, not retried)
}

func newProcessorTelemetry(set component.TelemetrySettings) (*processorTelemetry, error) {
	meter := set.MeterProvider.Meter(ScopeName)
	t := &processorTelemetry{}
	var err error
	if t.held, err = meter.Int64UpDownCounter("otelcol_processor_logllm_records_held",
		metric.WithDescription("Records held in memory waiting for their sequence to close and be scored."),
		metric.WithUnit("{records}")); err != nil {
		return nil, err
	}
	if t.records, err = meter.Int64Counter("otelcol_processor_logllm_records",
		metric.WithDescription("Records passed on, by logllm.status (ok, unavailable, timeout, rejected)."),
		metric.WithUnit("{records}")); err != nil {
		return nil, err
	}
	if t.sequences, err = meter.Int64Counter("otelcol_processor_logllm_sequences",
		metric.WithDescription("Sequences passed on, by logllm.status."),
		metric.WithUnit("{sequences}")); err != nil {
		return nil, err
	}
	if t.scored, err = meter.Int64Counter("otelcol_processor_logllm_sequences_scored",
		metric.WithDescription("Sequences that got a verdict from the inference server."),
		metric.WithUnit("{sequences}")); err != nil {
		return nil, err
	}
	if t.callDuration, err = meter.Float64Histogram("otelcol_processor_logllm_detect_duration",
		metric.WithDescription("Duration of logllm.v1.Inference/Detect calls, by logllm.status."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	if t.downstream, err = meter.Int64Counter("otelcol_processor_logllm_downstream_failures",
		metric.WithDescription("Records the next consumer in the pipeline refused after they left this processor."),
		metric.WithUnit("{records}")); err != nil {
		return nil, err
	}
	return t, nil
}

func statusAttr(status string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("status", status))
}

func (t *processorTelemetry) passed(ctx context.Context, status string, sequences, records int) {
	if sequences > 0 {
		t.sequences.Add(ctx, int64(sequences), statusAttr(status))
	}
	t.records.Add(ctx, int64(records), statusAttr(status))
}

func (t *processorTelemetry) call(ctx context.Context, status string, took time.Duration) {
	t.callDuration.Record(ctx, took.Seconds(), statusAttr(status))
}
