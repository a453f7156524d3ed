"""The result of ``au-ttt data check``: one :class:`Finding` per mismatch, and the tolerance rule for counts.

Kept apart from the walking code (:mod:`au_ttt.data.check`) so that other steps can build or read reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

__all__ = ["DEFAULT_SAMPLE", "DEFAULT_TOLERANCE", "CheckReport", "Finding", "Severity", "compare_count"]

Severity = Literal["error", "warning"]
# Defaults of `au-ttt data check`, here (stdlib only) so the CLI parser and the cost plan read them without
# importing the checker's pandas/OpenCV.
DEFAULT_SAMPLE = 5          # images decoded per sequence unless --full
DEFAULT_TOLERANCE = 0.005   # relative count difference still accepted as a warning


@dataclass(frozen=True)
class Finding:
    """One mismatch: severity, a stable code, where (file or subject/sequence) and what is wrong."""

    severity: Severity
    code: str
    where: str
    message: str
    subject: str | None = None
    column: str | None = None

    def line(self) -> str:
        return f"{self.severity.upper():7s} {self.code}: {self.where}: {self.message}"


@dataclass
class CheckReport:
    """Every finding of one check plus the counts it saw; ``ok`` means no error."""

    dataset: str
    root: str
    expect: str
    images: str
    findings: list[Finding] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def add(self, severity: Severity | None, code: str, where: str, message: str, subject: str | None = None,
            column: str | None = None) -> None:
        if severity is not None:
            self.findings.append(Finding(severity, code, where, message, subject, column))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self, per_code: int | None = None) -> list[str]:
        """Errors first, then warnings; at most ``per_code`` lines per code (the rest are counted)."""
        shown: Counter = Counter()
        hidden: Counter = Counter()
        out = []
        for f in self.errors + self.warnings:
            key = (f.severity, f.code)
            if per_code is not None and shown[key] >= per_code:
                hidden[key] += 1
                continue
            shown[key] += 1
            out.append(f.line())
        out += [f"{sev.upper():7s} {code}: … and {n} more (all of them are in the JSON report)"
                for (sev, code), n in hidden.items()]
        return out

    def summary(self) -> str:
        verdict = "MATCHES the protocol" if self.ok else "DOES NOT MATCH the protocol"
        counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
                           for k, v in self.counts.items())
        return (f"{self.dataset} at {self.root} ({self.expect} expectations, images {self.images}): {counts}. "
                f"{len(self.errors)} errors, {len(self.warnings)} warnings: {verdict}")

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "root": self.root, "expect": self.expect, "images": self.images,
                "ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings), "counts": self.counts,
                "findings": [asdict(f) for f in self.findings]}


def compare_count(expected: int, found: int, tolerance: float) -> Severity | None:
    """None when equal, a warning within ``tolerance`` × expected, an error beyond it."""
    if found == expected:
        return None
    return "warning" if abs(found - expected) <= tolerance * expected else "error"
