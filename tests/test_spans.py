"""SpanLayout's vectorised per-group cross-entropy equals torch's, group by group."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthgen.transforms.columns import Span
from synthgen.transforms.layout import SpanLayout

SPANS = [
    Span("x", "alpha", 0, 1),
    Span("x", "mode", 1, 3),
    Span("a", "category", 4, 7),
    Span("b", "null", 11, 2),
    Span("y", "alpha", 13, 1),
    Span("c", "category", 14, 20),
]


def test_cross_entropy_matches_torch_per_group():
    g = torch.Generator().manual_seed(0)
    n = 64
    logits = torch.randn(n, 34, generator=g) * 3
    data = torch.zeros(n, 34)
    targets = {}
    for span in SPANS:
        if span.continuous:
            data[:, span.start] = torch.randn(n, generator=g)
            continue
        pick = torch.randint(0, span.width, (n,), generator=g)
        data[torch.arange(n), span.start + pick] = 1
        targets[span] = pick
    expected = sum(
        F.cross_entropy(logits[:, s.start : s.stop], t, reduction="none")
        for s, t in targets.items()
    )
    layout = SpanLayout(SPANS, torch.device("cpu"))
    torch.testing.assert_close(layout.cross_entropy(logits, data), expected)
