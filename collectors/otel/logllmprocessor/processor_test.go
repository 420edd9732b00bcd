package logllmprocessor

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor/internal/logllmv1"
)

// fakeInference is an in-process logllm.v1.Inference server: a sequence is anomalous when one of
// its lines contains "ERROR" (evidence: those lines), normal otherwise. `mode` makes it hang,
// refuse or miscount.
type fakeInference struct {
	logllmv1.UnimplementedInferenceServer
	mu       sync.Mutex
	mode     string // "", "hang", "refuse", "miscount", "learning"
	token    string // when set, calls without "authorization: Bearer <token>" are refused
	requests [][]*logllmv1.Sequence
	release  chan struct{}
}

func (f *fakeInference) Detect(ctx context.Context, req *logllmv1.DetectRequest) (*logllmv1.DetectResponse, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req.GetSequences())
	mode, token := f.mode, f.token
	f.mu.Unlock()
	if token != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+token {
			return nil, status.Error(codes.Unauthenticated, "bad token")
		}
	}
	switch mode {
	case "hang":
		select {
		case <-ctx.Done():
		case <-f.release:
		}
		return nil, status.Error(codes.DeadlineExceeded, "hung")
	case "refuse":
		return nil, status.Error(codes.InvalidArgument, "refused by the test")
	}
	resp := &logllmv1.DetectResponse{ModelVersion: "test-v1"}
	for _, s := range req.GetSequences() {
		v := &logllmv1.Verdict{Id: s.GetId(), Key: s.GetKey(), Label: "normal", Score: 0.1, Category: "normal",
			ModelVersion: "test-v1", Familiarity: 0.75, Status: "ok"}
		if mode == "learning" {
			v = &logllmv1.Verdict{Id: s.GetId(), Key: s.GetKey(), Label: "unscored", Status: "learning"}
			resp.Verdicts = append(resp.Verdicts, v)
			continue
		}
		for i, line := range s.GetLines() {
			if strings.Contains(line, "ERROR") {
				v.Label, v.Score, v.Category, v.Suppressed = "anomalous", 0.9, "anomaly", strings.Contains(line, "known")
				v.Evidence = append(v.Evidence, uint32(i))
			}
		}
		resp.Verdicts = append(resp.Verdicts, v)
	}
	if mode == "miscount" && len(resp.Verdicts) > 0 {
		resp.Verdicts = resp.Verdicts[1:]
	}
	return resp, nil
}

func (f *fakeInference) setMode(mode string) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

func (f *fakeInference) calls() [][]*logllmv1.Sequence {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]*logllmv1.Sequence(nil), f.requests...)
}

func startFake(t *testing.T, f *fakeInference) string { return startFakeB(t, f) }

func startFakeB(t testing.TB, f *fakeInference) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.release = make(chan struct{})
	srv := grpc.NewServer()
	logllmv1.RegisterInferenceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { close(f.release); srv.Stop() })
	return lis.Addr().String()
}

// freeAddr: an address nothing listens on (bound, then closed).
func freeAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func testConfig(endpoint string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	cfg.MaxLines = 4
	cfg.MinLines = 2
	cfg.IdleTimeout = 200 * time.Millisecond
	cfg.MaxAge = 2 * time.Second
	cfg.LatencyBudget = 5 * time.Second
	cfg.Timeout = 2 * time.Second
	return cfg
}

type harness struct {
	t    testing.TB
	proc *logllmProcessor
	sink *consumertest.LogsSink
	tel  *componenttest.Telemetry
}

func start(t *testing.T, cfg *Config) *harness { return startB(t, cfg) }

func startB(t testing.TB, cfg *Config) *harness {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	tel := componenttest.NewTelemetry()
	set := processortest.NewNopSettings(Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.LogsSink)
	proc, err := NewFactory().CreateLogs(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, proc: proc.(*logllmProcessor), sink: sink, tel: tel}
	t.Cleanup(func() { _ = h.proc.Shutdown(context.Background()); _ = tel.Shutdown(context.Background()) })
	return h
}

type rec struct {
	key, body string
	traceID   byte // non-zero: the record carries a trace id made of this byte
}

// send hands one batch to the processor; records of one key share a resource (service.name).
func (h *harness) send(records ...rec) {
	h.t.Helper()
	ld := plog.NewLogs()
	for _, r := range records {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", r.key)
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("test-scope")
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr(r.body)
		lr.Attributes().PutStr("app.attr", "kept")
		if r.traceID != 0 {
			var tid pcommon.TraceID
			for i := range tid {
				tid[i] = r.traceID
			}
			lr.SetTraceID(tid)
		}
	}
	if err := h.proc.ConsumeLogs(context.Background(), ld); err != nil {
		h.t.Fatalf("ConsumeLogs: %v", err)
	}
}

type out struct {
	service, body string
	attrs         map[string]any
}

func (h *harness) received() []out {
	var got []out
	for _, ld := range h.sink.AllLogs() {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			svc, _ := rls.At(i).Resource().Attributes().Get("service.name")
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					got = append(got, out{service: svc.Str(), body: lrs.At(k).Body().Str(), attrs: lrs.At(k).Attributes().AsRaw()})
				}
			}
		}
	}
	return got
}

func (h *harness) waitFor(n int, within time.Duration) []out {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if h.sink.LogRecordCount() >= n {
			return h.received()
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("only %d of %d records passed on within %v", h.sink.LogRecordCount(), n, within)
	return nil
}

func lines(key string, n int) []rec {
	var rs []rec
	for i := range n {
		rs = append(rs, rec{key: key, body: fmt.Sprintf("%s line %d", key, i)})
	}
	return rs
}

func TestMaxLinesClosesASequenceAcrossBatches(t *testing.T) {
	f := &fakeInference{}
	h := start(t, testConfig(startFake(t, f)))
	rs := lines("a", 5)
	h.send(rs[0], rs[1])
	h.send(rs[2])
	time.Sleep(50 * time.Millisecond)
	if n := h.sink.LogRecordCount(); n != 0 {
		t.Fatalf("%d records passed on before the sequence closed", n)
	}
	h.send(rs[3], rs[4]) // the 4th line closes the sequence (max_lines 4); the 5th opens the next
	got := h.waitFor(4, time.Second)
	if len(got) != 4 {
		t.Fatalf("max_lines 4: want exactly 4 records at once, got %d", len(got))
	}
	for i, o := range got {
		if o.body != rs[i].body || o.attrs[attrSequenceID] != "a#0" || o.attrs[attrSequencePosition] != int64(i) {
			t.Fatalf("record %d: %+v", i, o)
		}
	}
	got = h.waitFor(5, 2*time.Second) // the 5th goes on when idle
	if got[4].attrs[attrSequenceID] != "a#1" || got[4].attrs[attrSequencePosition] != int64(0) {
		t.Fatalf("5th record must start sequence a#1: %+v", got[4].attrs)
	}
	if calls := f.calls(); len(calls) != 2 || len(calls[0]) != 1 || len(calls[0][0].GetLines()) != 4 {
		t.Fatalf("want one Detect call per closed sequence here, got %d calls", len(calls))
	}
}

func TestIdleTimeoutReleasesAShortSequence(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.IdleTimeout = 300 * time.Millisecond
	h := start(t, cfg)
	began := time.Now()
	h.send(lines("a", 2)...)
	got := h.waitFor(2, 2*time.Second)
	took := time.Since(began)
	if took < 300*time.Millisecond {
		t.Fatalf("released after %v, before idle_timeout", took)
	}
	if got[0].attrs[attrStatus] != statusOK || got[0].attrs[attrLabel] != "normal" {
		t.Fatalf("short sequence must still be scored: %+v", got[0].attrs)
	}
}

func TestMaxAgeClosesABusySequence(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.MaxLines = 1000
	cfg.IdleTimeout = time.Second
	cfg.MaxAge = 400 * time.Millisecond
	h := start(t, cfg)
	began := time.Now()
	for i := range 12 { // a line every 50 ms: never idle
		h.send(rec{key: "a", body: fmt.Sprintf("line %d", i)})
		time.Sleep(50 * time.Millisecond)
	}
	if h.sink.LogRecordCount() == 0 {
		t.Fatal("nothing passed on after 600 ms of a 400 ms max_age")
	}
	got := h.waitFor(12, 3*time.Second)
	first := got[0].attrs[attrSequenceID]
	var firstLen int
	for _, o := range got {
		if o.attrs[attrSequenceID] == first {
			firstLen++
		}
	}
	if firstLen >= 12 || firstLen < 5 {
		t.Fatalf("max_age 400ms with a line per 50ms: first sequence should hold ~8 lines, held %d (after %v)", firstLen, time.Since(began))
	}
}

func TestAHangingServerReleasesRecordsWithinTheLatencyBudget(t *testing.T) {
	f := &fakeInference{mode: "hang"}
	cfg := testConfig(startFake(t, f))
	cfg.LatencyBudget = 800 * time.Millisecond
	cfg.IdleTimeout = 2 * time.Second // capped at 400ms by the budget
	cfg.Timeout = 5 * time.Second     // capped by the budget too
	h := start(t, cfg)
	began := time.Now()
	h.send(lines("a", 2)...)
	got := h.waitFor(2, 3*time.Second)
	took := time.Since(began)
	if took > cfg.LatencyBudget+150*time.Millisecond {
		t.Fatalf("held %v, past the %v latency budget", took, cfg.LatencyBudget)
	}
	for _, o := range got {
		if o.attrs[attrStatus] != statusTimeout || o.attrs[attrLabel] != labelUnscored {
			t.Fatalf("want timeout/unscored, got %+v", o.attrs)
		}
		if _, has := o.attrs[attrScore]; has {
			t.Fatalf("an unscored record must carry no score: %+v", o.attrs)
		}
	}
}

func TestFailureStatuses(t *testing.T) {
	for mode, want := range map[string]string{"refuse": statusRejected, "miscount": statusRejected, "down": statusUnavailable} {
		t.Run(mode, func(t *testing.T) {
			endpoint := freeAddr(t)
			if mode != "down" {
				endpoint = startFake(t, &fakeInference{mode: mode})
			}
			h := start(t, testConfig(endpoint))
			h.send(lines("a", 4)...)
			h.send(lines("b", 4)...)
			got := h.waitFor(8, 3*time.Second)
			for _, o := range got {
				if o.attrs[attrStatus] != want || o.attrs[attrLabel] != labelUnscored || o.attrs["app.attr"] != "kept" {
					t.Fatalf("%s: want status %s, unscored, app attributes kept; got %+v", mode, want, o.attrs)
				}
			}
		})
	}
}

func TestAnnotationsMatchTheVerdict(t *testing.T) {
	f := &fakeInference{}
	h := start(t, testConfig(startFake(t, f)))
	h.send(rec{key: "svc", body: "ok 1"}, rec{key: "svc", body: "ERROR disk"}, rec{key: "svc", body: "ok 2"}, rec{key: "svc", body: "ok 3"})
	got := h.waitFor(4, 2*time.Second)
	for i, o := range got {
		a := o.attrs
		if a[attrLabel] != "anomalous" || a[attrScore] != 0.9 || a[attrCategory] != "anomaly" ||
			a[attrModelVersion] != "test-v1" || a[attrStatus] != statusOK || a[attrSequenceKey] != "svc" ||
			a[attrSequenceID] != "svc#0" || a[attrSequencePosition] != int64(i) || a[attrEvidence] != (i == 1) ||
			a[attrFamiliarity] != 0.75 || a[attrSuppressed] != false || a["app.attr"] != "kept" || o.service != "svc" ||
			a[attrClosedBy] != "full" {
			t.Fatalf("record %d annotated wrongly: %+v", i, a)
		}
	}
	// Two lines, then quiet: closed by idleness, and the records say so.
	h.send(rec{key: "quiet", body: "ok 1"}, rec{key: "quiet", body: "ok 2"})
	for _, o := range h.waitFor(6, 2*time.Second)[4:] {
		if o.attrs[attrClosedBy] != "idle" {
			t.Fatalf("a sequence closed by idleness: want closed_by idle, got %+v", o.attrs)
		}
	}
	// The server is told too (a learning server keeps the reason with its history).
	f.mu.Lock()
	defer f.mu.Unlock()
	sent := map[string]string{}
	for _, req := range f.requests {
		for _, s := range req {
			sent[s.GetKey()] = s.GetClosedBy()
		}
	}
	if sent["svc"] != "full" || sent["quiet"] != "idle" {
		t.Fatalf("Detect requests carry closed_by per sequence: want svc full, quiet idle; got %v", sent)
	}
}

func TestLearningServerAndSuppressedVerdicts(t *testing.T) {
	f := &fakeInference{mode: "learning"}
	h := start(t, testConfig(startFake(t, f)))
	h.send(lines("a", 4)...)
	got := h.waitFor(4, 2*time.Second)
	for _, o := range got {
		if o.attrs[attrStatus] != statusLearning || o.attrs[attrLabel] != labelUnscored {
			t.Fatalf("a learning server's verdict: want status learning, unscored; got %+v", o.attrs)
		}
		if _, has := o.attrs[attrScore]; has {
			t.Fatalf("no score while learning: %+v", o.attrs)
		}
	}
	f.setMode("")
	h.send(rec{key: "b", body: "ERROR known issue"}, rec{key: "b", body: "x"}, rec{key: "b", body: "y"}, rec{key: "b", body: "z"})
	got = h.waitFor(8, 2*time.Second)
	if got[4].attrs[attrSuppressed] != true || got[4].attrs[attrStatus] != statusOK {
		t.Fatalf("a suppressed verdict must say so: %+v", got[4].attrs)
	}
}

func TestTraceIDKeysBeforeAttributes(t *testing.T) {
	f := &fakeInference{}
	h := start(t, testConfig(startFake(t, f)))
	// Same service, two traces: two sequences, keyed by the trace id.
	h.send(rec{key: "svc", body: "t1 a", traceID: 1}, rec{key: "svc", body: "t2 a", traceID: 2},
		rec{key: "svc", body: "t1 b", traceID: 1}, rec{key: "svc", body: "t2 b", traceID: 2})
	got := h.waitFor(4, 2*time.Second)
	for _, o := range got {
		want := strings.Repeat(fmt.Sprintf("%02x", o.body[1]-'0'), 16)
		if o.attrs[attrSequenceKey] != want {
			t.Fatalf("%q keyed %v, want trace id %s", o.body, o.attrs[attrSequenceKey], want)
		}
	}
}

func TestEveryRecordOnceInOrderPerKeyAndDetectBatchesSequences(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.MaxLines = 5
	h := start(t, cfg)
	rng := rand.New(rand.NewSource(7))
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	next := map[string]int{}
	var batch []rec
	total := 0
	for total < 2000 {
		k := keys[rng.Intn(len(keys))]
		batch = append(batch, rec{key: k, body: fmt.Sprintf("%s %d", k, next[k])})
		next[k]++
		total++
		if len(batch) == 1+rng.Intn(40) {
			h.send(batch...)
			batch = nil
		}
	}
	h.send(batch...)
	got := h.waitFor(total, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	got = h.received()
	if len(got) != total {
		t.Fatalf("want %d records exactly once, got %d", total, len(got))
	}
	seen := map[string]int{}
	for _, o := range got {
		want := fmt.Sprintf("%s %d", o.service, seen[o.service])
		if o.body != want {
			t.Fatalf("out of order or duplicated for key %s: got %q, want %q", o.service, o.body, want)
		}
		seen[o.service]++
		if o.attrs[attrStatus] != statusOK {
			t.Fatalf("unexpected status %+v", o.attrs)
		}
	}
	batched := false
	for _, c := range f.calls() {
		batched = batched || len(c) > 1
	}
	if !batched {
		t.Fatalf("no Detect call carried more than one sequence (%d calls)", len(f.calls()))
	}
	assertCounter(t, h, "otelcol_processor_logllm_records", statusOK, int64(total))
	assertCounter(t, h, "otelcol_processor_logllm_records_held", "", 0)
}

func TestMaxHeldRecordsPassesABatchOnRejected(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.MaxHeldRecords = 5
	cfg.IdleTimeout = 500 * time.Millisecond
	h := start(t, cfg)
	h.send(rec{key: "a", body: "a0"}, rec{key: "b", body: "b0"}, rec{key: "c", body: "c0"})
	h.send(rec{key: "a", body: "a1"}, rec{key: "b", body: "b1"}, rec{key: "c", body: "c1"}) // 6 > 5: straight on
	got := h.received()
	if len(got) != 3 {
		t.Fatalf("the batch over max_held_records must pass on at once: got %d records", len(got))
	}
	for _, o := range got {
		if o.attrs[attrStatus] != statusRejected || o.attrs[attrLabel] != labelUnscored || !strings.HasSuffix(o.body, "1") {
			t.Fatalf("want the second batch rejected/unscored, got %q %+v", o.body, o.attrs)
		}
	}
	got = h.waitFor(6, 2*time.Second)
	for _, o := range got[3:] {
		if o.attrs[attrStatus] != statusOK {
			t.Fatalf("held records must still be scored: %+v", o.attrs)
		}
	}
	assertCounter(t, h, "otelcol_processor_logllm_records", statusRejected, 3)
}

func TestShutdownFlushesHeldRecords(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.IdleTimeout = 10 * time.Second
	cfg.LatencyBudget = 30 * time.Second
	h := start(t, cfg)
	h.send(lines("a", 2)...)
	h.send(lines("b", 3)...)
	time.Sleep(50 * time.Millisecond)
	if n := h.sink.LogRecordCount(); n != 0 {
		t.Fatalf("%d records passed on before shutdown", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.proc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := h.received()
	if len(got) != 5 {
		t.Fatalf("shutdown must pass on all 5 held records, got %d", len(got))
	}
	for _, o := range got {
		if o.attrs[attrStatus] != statusOK {
			t.Fatalf("flushed records are scored: %+v", o.attrs)
		}
	}
	// After shutdown, records pass straight on (nothing is held by a stopped processor).
	h.send(rec{key: "a", body: "late"})
	if got := h.received(); len(got) != 6 || got[5].attrs[attrStatus] != statusUnavailable {
		t.Fatalf("a record after shutdown must pass on at once as unavailable")
	}
}

func TestBearerTokenFileIsSent(t *testing.T) {
	f := &fakeInference{token: "s3cret"}
	cfg := testConfig(startFake(t, f))
	path := t.TempDir() + "/token"
	if err := writeFile(path, "s3cret\n"); err != nil {
		t.Fatal(err)
	}
	cfg.BearerTokenFile = path
	h := start(t, cfg)
	h.send(lines("a", 4)...)
	if got := h.waitFor(4, 2*time.Second); got[0].attrs[attrStatus] != statusOK {
		t.Fatalf("with the right token the call must succeed: %+v", got[0].attrs)
	}
	if err := writeFile(path, "rotated-wrong-token\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	h.send(lines("b", 4)...)
	if got := h.waitFor(8, 2*time.Second); got[4].attrs[attrStatus] != statusRejected {
		t.Fatalf("a rotated (wrong) token must be re-read and refused: %+v", got[4].attrs)
	}
}

func TestMissingBearerTokenFileFailsStart(t *testing.T) {
	cfg := testConfig("127.0.0.1:1")
	cfg.BearerTokenFile = t.TempDir() + "/absent"
	proc, err := NewFactory().CreateLogs(context.Background(), processortest.NewNopSettings(Type), cfg, new(consumertest.LogsSink))
	if err != nil {
		t.Fatal(err)
	}
	err = proc.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "bearer_token_file") {
		t.Fatalf("want a start error naming bearer_token_file, got %v", err)
	}
}

func TestServerComingBackIsUsedAgain(t *testing.T) {
	f := &fakeInference{mode: "refuse"}
	h := start(t, testConfig(startFake(t, f)))
	h.send(lines("a", 4)...)
	if got := h.waitFor(4, 2*time.Second); got[0].attrs[attrStatus] != statusRejected {
		t.Fatalf("want rejected while refusing: %+v", got[0].attrs)
	}
	f.setMode("")
	h.send(lines("a", 4)...)
	if got := h.waitFor(8, 2*time.Second); got[4].attrs[attrStatus] != statusOK {
		t.Fatalf("want ok once the server answers: %+v", got[4].attrs)
	}
}

func assertCounter(t *testing.T, h *harness, name, status string, want int64) {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("metric %s is %T", name, m.Data)
	}
	var got int64
	for _, dp := range sum.DataPoints {
		v, has := dp.Attributes.Value("status")
		if status == "" || (has && v.AsString() == status) {
			got += dp.Value
		}
	}
	if got != want {
		t.Fatalf("metric %s{status=%q} = %d, want %d", name, status, got, want)
	}
}

func TestChunksBoundCountAndBytesAndIsolateHugeLines(t *testing.T) {
	seq := func(lines, lineBytes int) *closedSequence {
		s := &closedSequence{}
		for range lines {
			r := plog.NewLogRecord()
			r.Body().SetStr(strings.Repeat("x", lineBytes))
			s.records = append(s.records, heldRecord{record: r})
		}
		return s
	}
	var ready []*closedSequence
	for range maxSequencesPerCall + 10 {
		ready = append(ready, seq(1, 10))
	}
	huge := seq(1, serverMaxLineBytes+1)
	ready = append(ready, huge, seq(1, 10), seq(9, serverMaxLineBytes), seq(9, serverMaxLineBytes))
	got := chunks(ready)
	var sizes []int
	var flat []*closedSequence
	for _, c := range got {
		sizes = append(sizes, len(c))
		flat = append(flat, c...)
	}
	// 256 (count cap), 10, the huge line alone, then 9 MiB + 9 MiB > 16 MiB: two calls.
	want := []int{maxSequencesPerCall, 10, 1, 2, 1}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("chunk sizes %v, want %v", sizes, want)
	}
	for i := range ready {
		if flat[i] != ready[i] {
			t.Fatalf("sequence %d out of order after chunking", i)
		}
	}
	if got[2][0] != huge {
		t.Fatal("the sequence with a huge line must go alone")
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func TestSequenceNumberingForgetsOldKeys(t *testing.T) {
	h := start(t, testConfig(freeAddr(t)))
	p := h.proc
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.takeIndex("first") != 0 || p.takeIndex("first") != 1 {
		t.Fatal("a key's sequences are numbered 0, 1, ...")
	}
	for i := range 3 * maxTrackedKeys {
		p.takeIndex(fmt.Sprintf("trace-%d", i))
	}
	if n := len(p.indexes); n >= 2*maxTrackedKeys || n < maxTrackedKeys {
		t.Fatalf("with unique keys the numbering must stay bounded: %d keys remembered", n)
	}
	if p.takeIndex("first") != 0 {
		t.Fatal("a key forgotten long ago restarts at #0")
	}
}

func TestManyUniqueTraceIDsAllPassOnce(t *testing.T) {
	f := &fakeInference{}
	cfg := testConfig(startFake(t, f))
	cfg.IdleTimeout = 100 * time.Millisecond
	h := start(t, cfg)
	const batches, perBatch = 40, 500
	for b := range batches {
		ld := plog.NewLogs()
		lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
		for i := range perBatch {
			lr := lrs.AppendEmpty()
			n := uint32(b*perBatch + i + 1)
			lr.SetTraceID(pcommon.TraceID{0: byte(n >> 24), 1: byte(n >> 16), 2: byte(n >> 8), 3: byte(n)})
			lr.Body().SetStr(fmt.Sprintf("trace %d", n))
		}
		if err := h.proc.ConsumeLogs(context.Background(), ld); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor(batches*perBatch, 10*time.Second)
	time.Sleep(150 * time.Millisecond)
	got := h.received()
	if len(got) != batches*perBatch {
		t.Fatalf("want %d records once, got %d", batches*perBatch, len(got))
	}
	ids := map[string]bool{}
	for _, o := range got {
		id := o.attrs[attrSequenceID].(string)
		if ids[id] {
			t.Fatalf("sequence %s seen twice: every trace is its own one-record sequence", id)
		}
		ids[id] = true
	}
	assertCounter(t, h, "otelcol_processor_logllm_records_held", "", 0)
}
