"""FollowingDetector: a replica that serves whatever version the learner publishes.

`serve --follow DIR` polls DIR/models/CURRENT every `learning.poll_s` seconds and swaps a new
version in between two calls. A version that does not load (corrupt, half-copied, another format)
is refused with one log line and a counter; the version it had keeps serving. Until the learner
has published anything, verdicts are `unscored` with status `learning`, as on the learner.
The learner's operator corrections (DIR/feedback.jsonl) apply here too.
"""
from __future__ import annotations

from pathlib import Path

from logllm_plugin.config import PluginConfig
from logllm_plugin.learning.versioned import VersionedDetector


class FollowingDetector(VersionedDetector):
    def __init__(self, directory: str | Path, config: PluginConfig, device: str = "auto"):
        super().__init__(directory, config, device=device, create=False)
        self.refresh()

    def add_feedback(self, sequences, label):  # one writer: the learner owns the store's files
        from logllm_plugin.serving.core import FeedbackUnsupported

        raise FeedbackUnsupported("this replica follows a learner: send feedback to the learner (serve --learn)")
