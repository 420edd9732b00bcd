"""What a candidate model must pass before it serves, on history it did not train on.

First the threshold is calibrated on one half of the held-out recent history (never lower than
the trainer's own choice): raised until at most `target_false_positive_rate` of it is flagged.
Unlabeled recent traffic is mostly healthy, so this is a target false-positive rate set without
labels; the trainer's threshold comes from injected anomalies alone and can sit far too low for
traffic whose normal varies a lot. Then, on the other half:

* flag rate on the most recent held-out history stays under a ceiling: recent traffic is mostly
  healthy, so a model flagging much of it has not learned this normal;
* injected anomalies (copies of held-out sequences with a step dropped, repeated, swapped or a
  foreign line) are caught at least at a floor, and at least twice as often as the held-out normal
  sequences are flagged: a model that flags nothing passes the first check, one that flags at
  random fails this one. The floor is low on purpose: where normal flows vary, a dropped or
  swapped step often is a normal flow, so no model catches all injected copies;
* against the serving model, on the same held-out history: no more flagged, and no worse F1 at
  an assumed anomaly share of ASSUMED_ANOMALY_SHARE (from the flag rate and the injected recall).
  Anomalies are rare, so halving the false positives is worth more than a few points of recall:
  "caught minus flagged" (Youden's J) weighs both alike and refused a candidate that flagged 5.1%
  and caught 57.6% against a serving model at 10.7% / 73.4%.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

from trainers.injection import inject_anomalies
# one assumption for comparing candidates and choosing a label-free model's views: a busy day's share of incidents
from trainers.view_choice import ASSUMED_ANOMALY_SHARE, expected_f1
from logllm_plugin.records import LogSequence

REGRESSION_TOLERANCE = 0.02
MIN_LIFT = 2.0  # injected anomalies flagged at least this many times as often as held-out normal ones


@dataclass
class CheckResult:
    flag_rate: float
    injected_recall: float
    holdout_sequences: int
    injected_sequences: int
    passed: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def expected_f1(self) -> float:
        """F1 on traffic with ASSUMED_ANOMALY_SHARE anomalies like the injected ones, the rest like
        the held-out history (recall = injected recall, false-positive rate = flag rate)."""
        return expected_f1(self.injected_recall, self.flag_rate, ASSUMED_ANOMALY_SHARE)

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_threshold(detector, calibration: Sequence[Sequence[str]], target_false_positive_rate: float) -> dict:
    """Raise the detector's threshold so at most the target share of `calibration` is flagged."""
    import math

    trained = float(detector.settings.threshold)
    scores = sorted((v.score for v in detector.detect([list(s) for s in calibration])), reverse=True)
    allowed = int(math.floor(target_false_positive_rate * len(scores)))
    threshold = trained
    if allowed < len(scores) and scores[allowed] >= trained:
        # just above the (allowed+1)-th highest score: that one and all below it are normal
        threshold = min(1.0, float(scores[allowed]) + 1e-6)
    detector.settings.threshold = threshold
    detector.verdict_cache.clear()
    return {"trained_threshold": round(trained, 6), "threshold": round(threshold, 6),
            "calibration_sequences": len(scores), "target_false_positive_rate": target_false_positive_rate}


def measure(detector, holdout: Sequence[Sequence[str]], seed: int = 0) -> CheckResult:
    verdicts = detector.detect([list(s) for s in holdout])
    flagged = sum(1 for v in verdicts if v.label == "anomalous")
    base = [LogSequence(id=str(n), lines=list(s)) for n, s in enumerate(holdout)]
    injected = [s for s in inject_anomalies(base, 1.0, seed) if s.label == 1]
    caught = sum(1 for v in detector.detect([s.lines for s in injected]) if v.label == "anomalous") if injected else 0
    return CheckResult(flag_rate=flagged / max(len(holdout), 1), injected_recall=caught / max(len(injected), 1),
                       holdout_sequences=len(holdout), injected_sequences=len(injected))


def judge(candidate: CheckResult, current: Optional[CheckResult], flag_rate_ceiling: float,
          min_injected_recall: float) -> CheckResult:
    reasons = []
    if candidate.flag_rate > flag_rate_ceiling:
        reasons.append(f"flags {candidate.flag_rate:.1%} of the recent held-out history (ceiling {flag_rate_ceiling:.0%})")
    if candidate.injected_recall < min_injected_recall:
        reasons.append(f"catches {candidate.injected_recall:.1%} of injected anomalies (floor {min_injected_recall:.0%})")
    elif candidate.injected_recall < MIN_LIFT * candidate.flag_rate:
        reasons.append(f"flags injected anomalies ({candidate.injected_recall:.1%}) hardly more often than normal "
                       f"sequences ({candidate.flag_rate:.1%})")
    if current is not None:
        if candidate.flag_rate > current.flag_rate + REGRESSION_TOLERANCE:
            reasons.append(f"flags more than the serving model ({candidate.flag_rate:.1%} vs {current.flag_rate:.1%})")
        # Recall alone would favour a serving model that flags everything after a release.
        if candidate.expected_f1 < current.expected_f1 - REGRESSION_TOLERANCE:
            reasons.append(f"tells injected anomalies from normal sequences worse than the serving model (caught "
                           f"{candidate.injected_recall:.1%} / flagged {candidate.flag_rate:.1%}: F1 "
                           f"{candidate.expected_f1:.3f} at {ASSUMED_ANOMALY_SHARE:.0%} anomalies vs "
                           f"{current.injected_recall:.1%} / {current.flag_rate:.1%}: {current.expected_f1:.3f})")
    candidate.reasons = reasons
    candidate.passed = not reasons
    return candidate
