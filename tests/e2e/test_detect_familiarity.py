"""`detect` tells "anomalous" from "never seen logs like these" (familiarity), and says so once."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

CLI = [sys.executable, "-m", "logllm_plugin"]
SSH = [  # an OpenSSH-style log: nothing like what the embedded model was trained on
    "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
    "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
    "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
    "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
    "Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]",
    "Dec 10 07:02:47 LabSZ sshd[24203]: Connection closed by 212.47.254.145 [preauth]",
]


def _detect(path, *extra):
    return subprocess.run(CLI + ["detect", "--input", str(path), "--show", "jsonl", *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=True)


def test_logs_unlike_the_training_data_get_one_note_with_the_command_that_learns_them(tmp_path):
    log = tmp_path / "ssh.log"
    log.write_text("\n".join(SSH) + "\n")
    done = _detect(log, "--key-regex", r"sshd\[\d+\]")
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(rows) == 2 and all(r["familiarity"] < 0.5 for r in rows)
    notes = [x for x in done.stderr.splitlines() if x.startswith("note: ")]
    assert len(notes) == 1 and "never seen logs like these" in notes[0]
    assert f"train small --normal-only --train {log} --key-regex 'sshd\\[\\d+\\]'" in done.stderr


def test_logs_like_the_training_data_get_no_note_and_full_familiarity():
    done = _detect(REPO / "examples" / "requests.jsonl")
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert sum(r["familiarity"] for r in rows) / len(rows) > 0.9
    assert "note: " not in done.stderr
