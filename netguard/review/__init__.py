"""The quarterly firewall review: snapshots, structural and semantic diffs, the review document.

- :mod:`netguard.review.snapshot`: self-describing, hash-checked snapshots and the append-only
  store (``netguard snapshot``);
- :mod:`netguard.review.load`: a snapshot read into rule sets, sets and security groups;
- :mod:`netguard.review.structural`: chains, rules, sets and groups added, removed, renamed,
  moved or modified, by normalised identity;
- :mod:`netguard.review.semantic`: flows newly permitted and newly denied at each hook, proven
  with the packet-space engine;
- :mod:`netguard.review.document` and :mod:`netguard.review.render`: the review document and
  its text, Markdown, HTML and JSON forms;
- :mod:`netguard.review.run`: ``run_snapshot``, ``run_diff``, ``run_review`` for the CLI.
"""

from netguard.review.run import (
    DiffOptions,
    ReviewOptions,
    SnapshotOptions,
    run_diff,
    run_review,
    run_snapshot,
)

__all__ = [
    "DiffOptions",
    "ReviewOptions",
    "SnapshotOptions",
    "run_diff",
    "run_review",
    "run_snapshot",
]
