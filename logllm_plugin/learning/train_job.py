"""The background trainer: one normal-only training run in a subprocess of its own.

A subprocess rather than a thread: it runs niced (scoring comes first), its memory goes back to
the system when it ends, and a crash or a kill leaves the serving process and the model store as
they were (it writes only into a temporary directory the learner publishes or deletes).

    python -m logllm_plugin.learning.train_job --train SEQS.jsonl --config CONFIG.json --out DIR [--threads N]
        [--parent-pid PID --nice N]

It trains through the trainer's public interface (`trainers.small.train_small`, normal-only), so
every improvement of the label-free trainer reaches learning mode unchanged.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent_and_yield(parent_pid: int, nice: int) -> None:
    """In the trainer, first thing: lower priority, and be killed when the learner dies (no orphan
    trainers). Done here rather than in a preexec_fn: Python code between fork and exec in a
    process with gRPC threads ran gRPC's fork handlers in the child, which aborted it now and then
    (`trainer exited with -6: ... epoll_wait error: Bad file descriptor`); without a preexec_fn the
    child execs at once."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if parent_pid and os.getppid() != parent_pid:  # the learner died before the signal was armed
        sys.exit(1)
    if nice:
        os.nice(nice)


# An operator's correction is one sequence among thousands of history: written this many times
# (identical windows become one example of this weight) so the next model learns it.
FEEDBACK_COPIES = 10


def write_training_set(path: Path, normal: Sequence[Sequence[str]], marked_normal: Sequence[Sequence[str]] = (),
                       marked_anomalous: Sequence[Sequence[str]] = (),
                       closed_by: Optional[Sequence[Optional[str]]] = None) -> None:
    """Operators' corrections with their labels, FEEDBACK_COPIES each, then the history as normal
    (label 0, oldest first), with the sequencer's reason when known.

    The history comes last because the trainer reads the end of its input as the newest traffic
    (`learning.holdout: mixed` holds out part of the threshold's share from there): corrections
    after it would all be held out, never trained on."""
    edges = list(closed_by) if closed_by is not None else [None] * len(normal)
    rows = [(lines, 0, None) for lines in marked_normal for _ in range(FEEDBACK_COPIES)]
    rows += [(lines, 1, None) for lines in marked_anomalous for _ in range(FEEDBACK_COPIES)]
    rows += [(lines, 0, edge) for lines, edge in zip(normal, edges)]
    with open(path, "w", encoding="utf-8") as handle:
        for n, (lines, label, edge) in enumerate(rows):
            row = {"id": f"h{n}", "lines": list(lines), "label": label}
            if edge:
                row["closed_by"] = edge
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def start_training(train_path: Path, config_dict: dict, out_dir: Path, threads: Optional[int], nice: int,
                   log_path: Path) -> subprocess.Popen:
    config_path = out_dir.parent / f"{out_dir.name}.config.json"
    config_path.write_text(json.dumps(config_dict), encoding="utf-8")
    command = [sys.executable, "-m", "logllm_plugin.learning.train_job", "--train", str(train_path),
               "--config", str(config_path), "--out", str(out_dir), "--parent-pid", str(os.getpid()),
               "--nice", str(nice)]
    if threads:
        command += ["--threads", str(threads)]
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def mark_input_masking(model_dir: Path, config) -> None:
    """Say in detector.json that this model scores personal-data-masked lines (the learner's
    history is masked as it arrives), so the Detector masks raw input the same way."""
    from logllm_plugin.artifacts import DETECTOR_FILE, read_json, write_json

    meta = read_json(model_dir / DETECTOR_FILE)
    meta["input_masking"] = {"personal_data": True, "mask_patterns": list(config.analysis.mask_patterns)}
    write_json(model_dir / DETECTOR_FILE, meta)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    die_with_parent_and_yield(args.parent_pid, args.nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s train_job %(levelname)s %(message)s")

    import torch

    from logllm_plugin.config import load_config
    from logllm_plugin.records import LogSequence
    from trainers.small import train_small

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(overrides=json.loads(Path(args.config).read_text(encoding="utf-8")), environ={})
    sequences = []
    with open(args.train, "r", encoding="utf-8") as handle:
        for raw in handle:
            item = json.loads(raw)
            sequences.append(LogSequence(id=item["id"], lines=item["lines"], label=1 if item.get("label") == 1 else 0,
                                         closed_by=item.get("closed_by")))
    outcome = train_small(sequences, None, config, args.out, normal_only=True,
                          progress=lambda epoch, total, record: logger.info("epoch %d/%d %s", epoch, total, record))
    mark_input_masking(Path(outcome.model_dir), config)
    logger.info("trained %s: %s", outcome.model_dir, json.dumps(outcome.metrics.get("valid", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
