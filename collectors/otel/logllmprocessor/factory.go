package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
)

const (
	typeStr = "logllm"
	// ScopeName names the processor's own meter.
	ScopeName = "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"
)

// Type is the component type used in collector configs: `processors: [logllm]`.
var Type = component.MustNewType(typeStr)

// NewFactory returns the factory of the logllm processor (logs only, alpha).
func NewFactory() processor.Factory {
	return processor.NewFactory(Type, createDefaultConfig,
		processor.WithLogs(createLogsProcessor, component.StabilityLevelAlpha))
}

func createLogsProcessor(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	return newLogllmProcessor(set, cfg.(*Config), next)
}
