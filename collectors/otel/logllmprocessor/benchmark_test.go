package logllmprocessor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
)

// BenchmarkProcessorThroughput: records/s through the processor alone (grouping, one Detect per
// batch of closed sequences against an in-process server that answers at once, annotation,
// hand-off), i.e. the processor's own cost without a model. 20 keys, 500-record batches.
func BenchmarkProcessorThroughput(b *testing.B) {
	f := &fakeInference{}
	cfg := testConfig(startFakeB(b, f))
	cfg.MaxLines = 15
	cfg.MinLines = 6
	cfg.IdleTimeout = 50 * time.Millisecond
	h := startB(b, cfg)
	const batch, keys = 500, 20
	batches := make([]plog.Logs, 0, 20)
	for n := range 20 {
		ld := plog.NewLogs()
		for k := range keys {
			rl := ld.ResourceLogs().AppendEmpty()
			rl.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", k))
			lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
			for i := range batch / keys {
				lrs.AppendEmpty().Body().SetStr(fmt.Sprintf("request %d of batch %d served in %d ms", i, n, i%17))
			}
		}
		batches = append(batches, ld)
	}
	b.ResetTimer()
	began := time.Now()
	sent := 0
	for i := 0; i < b.N; i++ {
		ld := plog.NewLogs()
		batches[i%len(batches)].CopyTo(ld)
		if err := h.proc.ConsumeLogs(context.Background(), ld); err != nil {
			b.Fatal(err)
		}
		sent += batch
	}
	for h.sink.LogRecordCount() < sent {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(sent)/time.Since(began).Seconds(), "records/s")
}
