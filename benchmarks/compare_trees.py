"""Seconds per epoch of a backend in this tree against an older checkout, interleaved.

Why: a refactor of the training loop must not slow the step down. Running the old and
the new code alternately, in fresh processes with the same settings, cancels most of
the machine's drift between runs (a shared 2-core VM drifts by +-5%), so the ratio of
medians is a fair measure even when the harness against SDV cannot be run quietly.

    git worktree add /tmp/oldtree <commit>
    python -m benchmarks.compare_trees --old /tmp/oldtree --backends tvae,ctgan \\
        --epochs 6 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, torch
torch.set_num_threads(int(sys.argv[3]))
import synthgen as sg
df = sg.datasets.load("adult")
name = sys.argv[1]
options = {"tabddpm": {"steps": None, "batch_size": 4096}}.get(name, {"batch_size": 500})
backend = {"tvae": sg.TVAE, "ctgan": sg.CTGAN, "tabddpm": sg.TabDDPM}[name]
model = backend(epochs=int(sys.argv[2]), seed=0, progress=False, **options).fit(df)
epochs = model.training_log.epochs
print(json.dumps({"file": sg.__file__, "seconds": [e["seconds"] for e in epochs],
                  "last": {k: v for k, v in epochs[-1].items() if k != "seconds"}}))
"""


def _run(tree: Path, backend: str, epochs: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "SYNTHGEN_NO_PROGRESS": "1"}
    env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, backend, str(epochs), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, type=Path, help="checkout of the older code")
    parser.add_argument("--backends", default="tvae,ctgan")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        per_tree: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for label, tree in (("old", args.old), ("new", ROOT)):
                result = _run(tree.resolve(), backend, args.epochs, args.threads)
                assert result["file"].startswith(str(tree.resolve())), result["file"]
                # the first epoch pays one-off allocation costs
                per_tree[label].append(statistics.median(result["seconds"][1:]))
        old, new = (statistics.median(per_tree[k]) for k in ("old", "new"))
        print(
            f"{backend}: s/epoch old {old:.3f} new {new:.3f} ratio new/old {new / old:.3f} "
            f"(rounds old {[round(v, 3) for v in per_tree['old']]}, "
            f"new {[round(v, 3) for v in per_tree['new']]})"
        )


if __name__ == "__main__":
    main()
