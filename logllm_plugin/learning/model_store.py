"""A versioned model store: the learner publishes, followers (other replicas) pick versions up.

    DIR/models/v000001/        a complete model directory (Detector.load reads it)
    DIR/models/v000002/
    DIR/models/CURRENT         {"version": "v000002"}: the version every replica serves
    DIR/models/.tmp-*          a version being written (a killed learner leaves one; removed at start)

Publishing writes the new version under a temporary name, fsyncs every file and the directory,
renames it into place, then replaces CURRENT the same way (write a temp file, fsync, rename): a
reader sees the old version or the new one, never half of one. The last `keep` versions stay, so
an operator can roll back (`logllm-plugin models rollback --dir DIR`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional

from logllm_plugin.artifacts import ModelDirError, check_model_dir

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
VERSION_RE = re.compile(r"v(\d{6})")
TEMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


class ModelStore:
    def __init__(self, directory: str | Path, keep: int = 5, create: bool = True):
        self.root = Path(directory) / "models"
        self.keep = max(1, keep)
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ModelDirError(f"model store {self.root}: {exc.strerror or exc}") from None
        elif not self.root.is_dir():  # a follower may start before its learner: it waits
            logger.warning("%s holds no model store yet (no models/ directory): serving nothing until the "
                           "learner (`serve --learn %s`) publishes a version", directory, directory)

    # -- reading ------------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and VERSION_RE.fullmatch(p.name))

    def current_version(self) -> Optional[str]:
        path = self.root / CURRENT_FILE
        try:
            version = json.loads(path.read_text(encoding="utf-8")).get("version")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelDirError(f"{path} is unreadable ({exc})") from None
        if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
            raise ModelDirError(f"{path} names no valid version ({version!r})")
        return version

    def path_of(self, version: str) -> Path:
        if not VERSION_RE.fullmatch(version or ""):
            raise ModelDirError(f"{version!r} is not a model version (they look like v000003)")
        path = self.root / version
        if not path.is_dir():
            raise ModelDirError(f"model version {version} is not in {self.root} (have: {', '.join(self.versions()) or 'none'})")
        return check_model_dir(path)

    def describe(self) -> list[dict]:
        current = self.current_version()
        out = []
        for version in self.versions():
            path = self.root / version
            meta = {}
            try:
                meta = json.loads((path / "learning.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
            out.append({"version": version, "current": version == current,
                        "created": meta.get("created"), "checks": meta.get("checks"),
                        "trained_on": meta.get("trained_on")})
        return out

    # -- writing ------------------------------------------------------------------------------------
    def temp_dir(self) -> Path:
        path = self.root / f"{TEMP_PREFIX}{os.getpid()}-{time.time_ns()}"
        path.mkdir(parents=True)
        return path

    def remove_stale_temps(self) -> int:
        """Versions half-written by a learner that died; nobody reads them."""
        removed = 0
        for path in self.root.glob(f"{TEMP_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        return removed

    def publish(self, built: Path, metadata: Optional[dict] = None) -> str:
        """Move a complete model directory in as the next version and make it current."""
        check_model_dir(built)
        if metadata is not None:
            (built / "learning.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n",
                                                 encoding="utf-8")
        _fsync_tree(built)
        existing = [int(VERSION_RE.fullmatch(v).group(1)) for v in self.versions()]
        version = f"v{(max(existing) + 1 if existing else 1):06d}"
        os.rename(built, self.root / version)
        _fsync_dir(self.root)
        self.set_current(version)
        self._prune()
        return version

    def set_current(self, version: str) -> None:
        self.path_of(version)  # refuses a missing or incomplete version
        temp = self.root / f"{TEMP_PREFIX}{CURRENT_FILE}-{os.getpid()}"
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"version": version, "since": time.time()}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.root / CURRENT_FILE)
        _fsync_dir(self.root)

    def rollback(self) -> str:
        """Make the version before the current one current; returns it."""
        current = self.current_version()
        versions = self.versions()
        if current is None or current not in versions or versions.index(current) == 0:
            raise ModelDirError(f"nothing to roll back to in {self.root} (current: {current or 'none'}, "
                                f"versions: {', '.join(versions) or 'none'})")
        previous = versions[versions.index(current) - 1]
        self.set_current(previous)
        return previous

    def _prune(self) -> None:
        current = self.current_version()
        versions = self.versions()
        for version in versions[: max(0, len(versions) - self.keep)]:
            if version != current:
                shutil.rmtree(self.root / version, ignore_errors=True)
