package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"

	"github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor/internal/logllmv1"
)

const (
	defaultKey = "default"
	// maxSequencesPerCall stays under the server's max_sequences_per_request (1024 by default).
	maxSequencesPerCall = 256
	// maxBytesPerCall keeps a request well under the server's max_request_bytes (64 MiB).
	maxBytesPerCall = 16 << 20
	// serverMaxLineBytes is the server's default max_line_bytes (1 MiB).
	serverMaxLineBytes = 1 << 20
	// maxTrackedKeys bounds the per-key sequence numbering (keys may be unique trace ids); a
	// key first seen more than this many keys ago may restart at #0 (the Python sequencer
	// bounds it likewise).
	maxTrackedKeys = 100_000
)

// origin is the resource and scope a record came with; shared by the records of one ScopeLogs.
type origin struct {
	resource       pcommon.Resource
	resourceSchema string
	scope          pcommon.InstrumentationScope
	scopeSchema    string
}

type heldRecord struct {
	record  plog.LogRecord // the processor's own copy
	origin  *origin
	arrived time.Time
}

type openSequence struct {
	key         string
	index       uint64
	first, last time.Time
	records     []heldRecord
}

type closedSequence struct {
	id, key  string
	closedBy string // full | idle | age | end (shutdown): as the Python sequencer names it
	records  []heldRecord
}

func (s *closedSequence) oldest() time.Time {
	oldest := s.records[0].arrived
	for _, r := range s.records[1:] {
		if r.arrived.Before(oldest) {
			oldest = r.arrived
		}
	}
	return oldest
}

type logllmProcessor struct {
	cfg       *Config
	next      consumer.Logs
	logger    *zap.Logger
	set       component.TelemetrySettings
	telemetry *processorTelemetry
	idle      time.Duration
	maxAge    time.Duration
	tick      time.Duration
	now       func() time.Time

	mu        sync.Mutex
	open      map[string]*openSequence
	ready     []*closedSequence
	held      int
	indexes   map[string]uint64
	indexAge  []string // insertion order of indexes, to bound it
	started   bool
	stopping  bool
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	conn      *grpc.ClientConn
	client    logllmv1.InferenceClient
	token     *tokenFile
	warnMu    sync.Mutex
	lastWarns map[string]time.Time
}

var _ processor.Logs = (*logllmProcessor)(nil)

func newLogllmProcessor(set processor.Settings, cfg *Config, next consumer.Logs) (*logllmProcessor, error) {
	tel, err := newProcessorTelemetry(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("logllm processor telemetry: %w", err)
	}
	idle, maxAge := cfg.holdLimits()
	return &logllmProcessor{
		cfg: cfg, next: next, logger: set.Logger, set: set.TelemetrySettings, telemetry: tel,
		idle: idle, maxAge: maxAge, tick: min(50*time.Millisecond, max(idle/4, time.Millisecond)),
		now:       time.Now,
		open:      map[string]*openSequence{},
		indexes:   map[string]uint64{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		lastWarns: map[string]time.Time{},
	}, nil
}

// Capabilities: the processor writes attributes into the records it passes on.
func (p *logllmProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// Start dials the inference server (lazily: a server that is down now only makes records pass
// on `unavailable` until it is up) and starts the worker.
func (p *logllmProcessor) Start(ctx context.Context, host component.Host) error {
	if p.cfg.BearerTokenFile != "" {
		tf, err := newTokenFile(p.cfg.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("bearer_token_file: %w", err)
		}
		p.token = tf
	}
	cc := p.cfg.grpcClientConfig()
	// Reconnect quickly after the server comes back: within a latency budget of seconds the
	// gRPC default backoff (up to 120 s) would leave records unscored long after a restart.
	params := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: time.Second,
	})
	conn, err := cc.ToClientConn(ctx, host.GetExtensions(), p.set, configgrpc.WithGrpcDialOption(params))
	if err != nil {
		return fmt.Errorf("logllm processor: endpoint %q: %w", p.cfg.Endpoint, err)
	}
	p.mu.Lock()
	p.conn = conn
	p.client = logllmv1.NewInferenceClient(conn)
	p.started = true
	p.mu.Unlock()
	go p.run()
	return nil
}

// Shutdown closes every open sequence, scores it (within the latency budget) and passes it on,
// then closes the connection.
func (p *logllmProcessor) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	started := p.started
	p.stopping = true
	p.mu.Unlock()
	if !started {
		return nil
	}
	p.stopOnce.Do(func() { close(p.stop) })
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = fmt.Errorf("logllm processor: shutdown ended before held records were flushed: %w", ctx.Err())
	}
	p.mu.Lock()
	conn := p.conn
	p.conn = nil
	p.mu.Unlock()
	if conn != nil {
		err = errors.Join(err, conn.Close())
	}
	return err
}

// ConsumeLogs takes the batch into the per-key sequences and returns; the records go on from
// the worker once their sequence is scored (or could not be). A batch that does not fit under
// max_held_records goes on at once, unannotated, `rejected`: it is handled as a whole so that a
// downstream error can be returned for it and a retry by the sender duplicates nothing.
func (p *logllmProcessor) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	n := ld.LogRecordCount()
	if n == 0 {
		return nil
	}
	p.mu.Lock()
	if p.stopping || !p.started {
		p.mu.Unlock()
		annotateAllUnscored(ld, statusUnavailable)
		p.telemetry.passed(ctx, statusUnavailable, 0, n)
		return p.next.ConsumeLogs(ctx, ld)
	}
	if p.held+n > p.cfg.MaxHeldRecords {
		held := p.held
		p.mu.Unlock()
		p.warnEvery("max_held_records", "a batch passes on unscored (rejected): the processor holds max_held_records",
			zap.Int("held", held), zap.Int("batch", n), zap.Int("max_held_records", p.cfg.MaxHeldRecords))
		annotateAllUnscored(ld, statusRejected)
		p.telemetry.passed(ctx, statusRejected, 0, n)
		return p.next.ConsumeLogs(ctx, ld)
	}
	now := p.now()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		resource := pcommon.NewResource()
		rl.Resource().CopyTo(resource)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			o := &origin{resource: resource, resourceSchema: rl.SchemaUrl(), scopeSchema: sl.SchemaUrl(),
				scope: pcommon.NewInstrumentationScope()}
			sl.Scope().CopyTo(o.scope)
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				record := plog.NewLogRecord()
				lrs.At(k).CopyTo(record)
				p.add(p.keyOf(record, resource), heldRecord{record: record, origin: o, arrived: now})
			}
		}
	}
	p.held += n
	wake := len(p.ready) > 0
	p.mu.Unlock()
	p.telemetry.held.Add(ctx, int64(n))
	if wake {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// keyOf: the trace id when the record has one, else the key attributes found on the record,
// then on its resource, joined by "|" (as the Python sequencer).
func (p *logllmProcessor) keyOf(record plog.LogRecord, resource pcommon.Resource) string {
	if tid := record.TraceID(); !tid.IsEmpty() {
		return tid.String()
	}
	var found []string
	for _, name := range p.cfg.KeyAttributes {
		if v, ok := record.Attributes().Get(name); ok {
			found = append(found, v.AsString())
		} else if v, ok := resource.Attributes().Get(name); ok {
			found = append(found, v.AsString())
		}
	}
	if len(found) == 0 {
		return defaultKey
	}
	return strings.Join(found, "|")
}

// add appends a record to its key's open sequence (p.mu held).
func (p *logllmProcessor) add(key string, h heldRecord) {
	s := p.open[key]
	if s != nil && (h.arrived.Sub(s.last) >= p.idle || h.arrived.Sub(s.first) >= p.maxAge) {
		p.closeSequence(s, expiryReason(s, h.arrived, p.idle))
		s = nil
	}
	if s == nil {
		s = &openSequence{key: key, index: p.takeIndex(key), first: h.arrived, last: h.arrived}
		p.open[key] = s
	}
	s.records = append(s.records, h)
	s.last = h.arrived
	if len(s.records) >= p.cfg.MaxLines {
		p.closeSequence(s, "full")
	}
}

func (p *logllmProcessor) takeIndex(key string) uint64 {
	index, seen := p.indexes[key]
	p.indexes[key] = index + 1
	if !seen {
		p.indexAge = append(p.indexAge, key)
		// Forget the oldest keys in bulk (amortised O(1) per key): between maxTrackedKeys and
		// twice that many keys are remembered.
		if len(p.indexAge) >= 2*maxTrackedKeys {
			drop := p.indexAge[:maxTrackedKeys]
			for _, k := range drop {
				delete(p.indexes, k)
			}
			p.indexAge = append([]string(nil), p.indexAge[maxTrackedKeys:]...)
		}
	}
	return index
}

func (p *logllmProcessor) closeSequence(s *openSequence, reason string) {
	delete(p.open, s.key)
	p.ready = append(p.ready, &closedSequence{id: fmt.Sprintf("%s#%d", s.key, s.index), key: s.key,
		closedBy: reason, records: s.records})
}

// expiryReason says why a sequence is due at `now`: idle before age, as the Python sequencer.
func expiryReason(s *openSequence, now time.Time, idle time.Duration) string {
	if now.Sub(s.last) >= idle {
		return "idle"
	}
	return "age"
}

// takeReady closes expired sequences (all of them when `all`) and takes what is ready, in the
// order the sequences closed: per key that is arrival order.
func (p *logllmProcessor) takeReady(all bool) []*closedSequence {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var expired []*openSequence
	for _, s := range p.open {
		if all || now.Sub(s.last) >= p.idle || now.Sub(s.first) >= p.maxAge {
			expired = append(expired, s)
		}
	}
	// Oldest first, so that a flush passes records on in roughly arrival order across keys too.
	sortByFirst(expired)
	for _, s := range expired {
		reason := "end" // shutdown or flush: the sequence may be missing its tail
		if now.Sub(s.last) >= p.idle || now.Sub(s.first) >= p.maxAge {
			reason = expiryReason(s, now, p.idle)
		}
		p.closeSequence(s, reason)
	}
	ready := p.ready
	p.ready = nil
	return ready
}

func sortByFirst(seqs []*openSequence) {
	slices.SortStableFunc(seqs, func(a, b *openSequence) int { return a.first.Compare(b.first) })
}

// run is the worker: one goroutine, so sequences of a key are scored and passed on in order.
func (p *logllmProcessor) run() {
	defer close(p.done)
	ticker := time.NewTicker(p.tick)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			p.process(p.takeReady(true))
			return
		case <-ticker.C:
		case <-p.wake:
		}
		p.process(p.takeReady(false))
	}
}

func (p *logllmProcessor) process(ready []*closedSequence) {
	for _, chunk := range chunks(ready) {
		verdicts, status := p.score(chunk)
		p.pass(chunk, verdicts, status)
	}
}

// chunks splits the ready sequences into Detect calls of at most maxSequencesPerCall sequences
// and maxBytesPerCall bytes of lines, keeping their order. A sequence with a line over the
// server's default max_line_bytes goes alone, so that if the server refuses it, only its records
// pass on unscored.
func chunks(ready []*closedSequence) [][]*closedSequence {
	var out [][]*closedSequence
	var current []*closedSequence
	size := 0
	flush := func() {
		if len(current) > 0 {
			out = append(out, current)
			current, size = nil, 0
		}
	}
	for _, s := range ready {
		n, longest := 0, 0
		for _, r := range s.records {
			l := len(r.record.Body().AsString())
			n += l
			longest = max(longest, l)
		}
		if longest > serverMaxLineBytes {
			flush()
			out = append(out, []*closedSequence{s})
			continue
		}
		if len(current) == maxSequencesPerCall || (len(current) > 0 && size+n > maxBytesPerCall) {
			flush()
		}
		current = append(current, s)
		size += n
	}
	flush()
	return out
}

// score makes one Detect call for the chunk, bounded by the timeout and by what is left of the
// latency budget of the oldest record in it (and by half the budget, so that sequences which
// closed during this call still have time for theirs).
func (p *logllmProcessor) score(chunk []*closedSequence) ([]*logllmv1.Verdict, string) {
	oldest := chunk[0].oldest()
	for _, s := range chunk[1:] {
		if o := s.oldest(); o.Before(oldest) {
			oldest = o
		}
	}
	timeout := min(p.cfg.Timeout, p.cfg.LatencyBudget/2, time.Until(oldest.Add(p.cfg.LatencyBudget)))
	if timeout <= 0 {
		p.warnEvery("budget", "sequences passed on unscored: no time left in the latency budget")
		return nil, statusTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if p.token != nil {
		token, err := p.token.get()
		if err != nil {
			p.warnEvery("token", "sequences passed on unscored: cannot read bearer_token_file", zap.Error(err))
			return nil, statusRejected
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	req := &logllmv1.DetectRequest{Sequences: make([]*logllmv1.Sequence, len(chunk))}
	for i, s := range chunk {
		lines := make([]string, len(s.records))
		for j, r := range s.records {
			lines[j] = r.record.Body().AsString()
		}
		req.Sequences[i] = &logllmv1.Sequence{Id: s.id, Key: s.key, Lines: lines, ClosedBy: s.closedBy}
	}
	began := time.Now()
	resp, err := p.client.Detect(ctx, req)
	took := time.Since(began)
	st := statusOK
	switch {
	case err != nil:
		st = failureStatus(ctx, err)
		p.warnEvery("detect-"+st, "sequences passed on unscored", zap.String("logllm.status", st), zap.Error(err))
	case len(resp.GetVerdicts()) != len(chunk):
		st = statusRejected
		p.warnEvery("count", "sequences passed on unscored: the server answered a different number of verdicts",
			zap.Int("sequences", len(chunk)), zap.Int("verdicts", len(resp.GetVerdicts())))
	}
	p.telemetry.call(context.Background(), st, took)
	if st != statusOK {
		return nil, st
	}
	return resp.GetVerdicts(), statusOK
}

// failureStatus maps a failed call to logllm.status: the server could not be reached
// (unavailable), did not answer in time (timeout), or refused the request (rejected).
func failureStatus(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return statusTimeout
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return statusTimeout
	case codes.Unavailable, codes.Canceled:
		return statusUnavailable
	default:
		return statusRejected
	}
}

// pass annotates the chunk's records and hands them to the next consumer in one plog.Logs,
// keeping each record's resource and scope.
func (p *logllmProcessor) pass(chunk []*closedSequence, verdicts []*logllmv1.Verdict, st string) {
	out := plog.NewLogs()
	var lastOrigin *origin
	var scopeLogs plog.ScopeLogs
	records := 0
	for i, s := range chunk {
		var verdict *logllmv1.Verdict
		if verdicts != nil {
			verdict = verdicts[i]
		}
		for position, h := range s.records {
			annotate(h.record, s.id, s.key, position, verdict, st)
			h.record.Attributes().PutStr(attrClosedBy, s.closedBy)
			if h.origin != lastOrigin {
				rl := out.ResourceLogs().AppendEmpty()
				h.origin.resource.CopyTo(rl.Resource())
				rl.SetSchemaUrl(h.origin.resourceSchema)
				scopeLogs = rl.ScopeLogs().AppendEmpty()
				h.origin.scope.CopyTo(scopeLogs.Scope())
				scopeLogs.SetSchemaUrl(h.origin.scopeSchema)
				lastOrigin = h.origin
			}
			h.record.MoveTo(scopeLogs.LogRecords().AppendEmpty())
			records++
		}
	}
	ctx := context.Background()
	if st == statusOK {
		p.telemetry.scored.Add(ctx, int64(len(chunk)))
	}
	p.telemetry.passed(ctx, st, len(chunk), records)
	p.mu.Lock()
	p.held -= records
	p.mu.Unlock()
	p.telemetry.held.Add(ctx, -int64(records))
	if err := p.next.ConsumeLogs(ctx, out); err != nil {
		// The sender was answered when the records arrived; the next consumer's error can only
		// be recorded here (a batch processor after this one, as in the documented pipeline,
		// does not fail).
		p.telemetry.downstream.Add(ctx, int64(records))
		p.logger.Error("the next consumer refused records that left the logllm processor",
			zap.Int("records", records), zap.Error(err))
	}
}

// warnEvery logs a warning at most once per 10 s per reason, so an outage does not flood the log.
func (p *logllmProcessor) warnEvery(reason, msg string, fields ...zap.Field) {
	p.warnMu.Lock()
	last, seen := p.lastWarns[reason]
	now := time.Now()
	if seen && now.Sub(last) < 10*time.Second {
		p.warnMu.Unlock()
		return
	}
	p.lastWarns[reason] = now
	p.warnMu.Unlock()
	p.logger.Warn(msg, fields...)
}
