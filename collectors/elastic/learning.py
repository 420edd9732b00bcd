"""`es annotate --learn DIR`: learning mode for the annotator, bootstrapped from the index itself.

A learner that has no model yet would annotate everything pending as `learning`. The documents are
already there, though: before the first pass, the index's own history (the same query, keys and
sequencer as the annotator) goes into the learner's history and the first model is trained from
it, in the foreground. Later passes go through the learner like any other traffic, so scheduled
retraining and operators' corrections work as in `serve --learn`.
"""
from __future__ import annotations

import logging
from typing import Optional

from collectors.elastic.history import HistoryError, HistoryQuery, read_history

logger = logging.getLogger(__name__)


def bootstrap_learner(learner, client, *, index: str, key_fields: tuple[str, ...], message_field: str,
                      time_field: Optional[str], sequencer) -> dict:
    """Feed the index's history to a learner without a model and train it once; returns what happened."""
    if learner.state == "serving":
        return {"bootstrapped": False, "reason": f"model {learner.version} already serves"}
    # The whole index up to now: what the annotator is about to read anyway (the learner trains on the
    # most recent `learning.train_max_sequences` of it).
    spec = HistoryQuery(index=index, key_fields=tuple(key_fields), message_field=message_field,
                        time_field=time_field or "@timestamp", query_json='{"match_all": {}}')
    try:
        sequences = read_history(client, spec, sequencer)
    except HistoryError as exc:
        return {"bootstrapped": False, "reason": str(exc)}
    learner.learn_from([s.lines for s in sequences])
    if not learner.due():
        return {"bootstrapped": False, "history_sequences": learner.history.count,
                "reason": f"{learner.history.count} sequences in the history; the first model trains at "
                          f"{learner.learning.min_sequences} (learning.min_sequences)"}
    learner.start_training().join()
    outcome = dict(learner.last_outcome)
    logger.info("learning: bootstrapped from %s", index, extra={"outcome": outcome})
    return {"bootstrapped": bool(outcome.get("published")), "history_sequences": learner.history.count,
            "version": outcome.get("version"), "checks": outcome.get("checks"), "reason": outcome.get("error")}
