package logllmprocessor // import "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor"

import (
	"slices"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor/internal/logllmv1"
)

// The logllm.* attribute names of DESIGN.md §3 (collectors/annotations.py in Python).
const (
	attrScore            = "logllm.anomaly.score"
	attrLabel            = "logllm.anomaly.label"
	attrCategory         = "logllm.anomaly.category"
	attrSequenceID       = "logllm.sequence.id"
	attrSequenceKey      = "logllm.sequence.key"
	attrSequencePosition = "logllm.sequence.position"
	attrEvidence         = "logllm.evidence"
	attrModelVersion     = "logllm.model.version"
	attrStatus           = "logllm.status"
	attrFamiliarity      = "logllm.sequence.familiarity"
	attrSuppressed       = "logllm.suppressed"
	attrClosedBy         = "logllm.sequence.closed_by" // full | idle | age | end: why the sequence closed

	statusOK          = "ok"
	statusUnavailable = "unavailable"
	statusTimeout     = "timeout"
	statusRejected    = "rejected"
	statusLearning    = "learning" // the server has no model yet (learning mode)
	labelUnscored     = "unscored"
)

// annotate writes what the Python record_annotations() writes for the record at `position` of a
// sequence; a nil verdict means not scored (label "unscored", status says why).
func annotate(record plog.LogRecord, sequenceID, key string, position int, verdict *logllmv1.Verdict, status string) {
	attrs := record.Attributes()
	attrs.PutStr(attrSequenceID, sequenceID)
	attrs.PutStr(attrSequenceKey, key)
	attrs.PutInt(attrSequencePosition, int64(position))
	attrs.PutStr(attrStatus, status)
	if verdict == nil {
		attrs.PutStr(attrLabel, labelUnscored)
		return
	}
	if verdict.GetStatus() == statusLearning { // no model yet: nothing to say but that it is learning
		attrs.PutStr(attrStatus, statusLearning)
		attrs.PutStr(attrLabel, labelUnscored)
		return
	}
	attrs.PutDouble(attrScore, verdict.GetScore())
	attrs.PutStr(attrLabel, verdict.GetLabel())
	attrs.PutStr(attrCategory, verdict.GetCategory())
	attrs.PutBool(attrEvidence, slices.Contains(verdict.GetEvidence(), uint32(position)))
	attrs.PutStr(attrModelVersion, verdict.GetModelVersion())
	attrs.PutDouble(attrFamiliarity, verdict.GetFamiliarity())
	attrs.PutBool(attrSuppressed, verdict.GetSuppressed())
}

// annotateAllUnscored marks every record of a batch that passes straight on.
func annotateAllUnscored(ld plog.Logs, status string) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				annotate(lrs.At(k), "", "", 0, nil, status)
			}
		}
	}
}
