"""What a dataset-wide stage did: files written, skipped because already done, and failed (named)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunReport:
    """Counts and names for one pass over a dataset. ``failed`` holds ``(path, reason)`` pairs;
    ``removed_part_files`` counts the orphan temporary files of an interrupted run that this one deleted."""

    stage: str
    done: int = 0
    skipped_existing: int = 0
    removed_part_files: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, path: str | Path, reason: str) -> None:
        self.failed.append((str(path), reason))

    def merge(self, other: RunReport) -> RunReport:
        self.done += other.done
        self.skipped_existing += other.skipped_existing
        self.removed_part_files += other.removed_part_files
        self.failed.extend(other.failed)
        return self

    def summary(self) -> str:
        s = (
            f"[{self.stage}] wrote {self.done}, skipped {self.skipped_existing} already done, "
            f"failed {len(self.failed)}"
        )
        if self.removed_part_files:
            s += (
                f"; removed {self.removed_part_files} unfinished temporary (.part) files "
                "left by an interrupted run"
            )
        for p, r in self.failed[:20]:
            s += f"\n  FAILED {p}: {r}"
        if len(self.failed) > 20:
            s += f"\n  ... and {len(self.failed) - 20} more (see the run report JSON)"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "done": self.done,
            "skipped_existing": self.skipped_existing,
            "removed_part_files": self.removed_part_files,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            **self.extra,
        }


__all__ = ["RunReport"]
