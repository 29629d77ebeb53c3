"""Image harness: the three image backends on digits at equal training time.

For each backend: fit on the training split (80%, stratified) of scikit-learn's digits
with the same ``max_training_time`` (epochs unbounded, so the clock decides), draw
``--per-class`` conditional samples of every class, and score them with
``evaluation.images.evaluate_images`` against the training split and the real holdout:
FID, KID and precision/recall through torch-fidelity in the feature space of one
project extractor (a small CNN trained once on the training split, shared by every row
and saved beside the results so the numbers stay comparable), the share of samples
the extractor's classifier assigns to their class, and the augmentation utility (a
classifier trained on 10% of the real images, with and without the samples, scored on
the holdout). Two reference rows bracket the scale: ``real`` (the holdout itself as the
"synthetic" set: the floor) and ``shuffled`` (holdout images with their pixels permuted).

    python -m benchmarks.images --size 16 --budget 120 --out benchmarks/results/images.jsonl
    python -m benchmarks.images --table --out benchmarks/results/images.jsonl

Run on a quiet machine, one process at a time (torch with 2 threads collapses when
another busy process shares the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import synthgen as sg
from evaluation.images import ImageFeatureExtractor, evaluate_images
from synthgen.images import ImageSet, load_digits

BACKENDS = {"image_vae": "ImageVAE", "image_gan": "ImageGAN", "image_ddpm": "ImageDDPM"}
SCORES = (
    "fid.image",
    "kid.mean",
    "prc.precision",
    "prc.recall",
    "classifier.synthetic_accuracy",
    "utility.real_only_accuracy",
    "utility.augmented_accuracy",
    "utility.augmentation_gain",
)


def split(size: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Digits at ``size`` pixels a side: (train 80%, holdout 20%), stratified."""
    return load_digits(size).split(0.2, seed=seed)


def shuffled(images: ImageSet, seed: int = 0) -> ImageSet:
    """Each image's pixels permuted (same pixel values, no strokes): a far-off reference."""
    rng = np.random.default_rng(seed)
    flat = images.images.reshape(len(images), -1).copy()
    for row in flat:
        rng.shuffle(row)
    return ImageSet(flat.reshape(images.images.shape), images.labels.copy(), images.schema)


def conditional_samples(model: Any, per_class: int, seed: int) -> ImageSet:
    parts = [
        model.sample(per_class, seed=seed + code, conditions={"label": code})
        for code in range(model.schema.n_classes)
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.concat(part)
    return out


def run_backend(
    name: str,
    train: ImageSet,
    holdout: ImageSet,
    extractor: ImageFeatureExtractor,
    budget: float,
    per_class: int,
    seed: int,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    model = getattr(sg, BACKENDS[name])(
        epochs=1_000_000, seed=seed, max_training_time=budget, progress=False, **overrides
    )
    start = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = conditional_samples(model, per_class, seed=1000 * (seed + 1))
    sample_seconds = time.perf_counter() - start
    report = evaluate_images(train, synthetic, holdout, extractor=extractor, seed=seed)
    return {
        "backend": name,
        "seed": seed,
        "params": {k: v for k, v in model.get_params().items() if k in overrides},
        "fit_seconds": round(fit_seconds, 2),
        "epochs": len(model.training_log.epochs),
        "optimizer_steps": int(model.step_),
        "sample_seconds": round(sample_seconds, 2),
        "images": len(synthetic),
        **_scores(report.scores),
    }


def run_reference(
    label: str, synthetic: ImageSet, train: ImageSet, holdout: ImageSet, extractor: Any
) -> dict[str, Any]:
    report = evaluate_images(train, synthetic, holdout, extractor=extractor, seed=0)
    return {"backend": label, "images": len(synthetic), **_scores(report.scores)}


def _scores(scores: dict[str, Any]) -> dict[str, Any]:
    keep = (*SCORES, "fid.real_vs_real", "kid.std", "prc.f_score", "classifier.holdout_accuracy")
    return {k: round(float(scores[k]), 5) for k in keep if k in scores}


def markdown_table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = ["backend", "size", "budget s", "fit s", "epochs", "FID", "KID", "precision",
            "recall", "class acc", "10% real", "+ synthetic", "gain", "sample s"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["backend"], r.get("size", ""), r.get("budget", ""), r.get("fit_seconds", ""),
            r.get("epochs", ""), _f(r.get("fid.image")), _f(r.get("kid.mean")),
            _f(r.get("prc.precision")), _f(r.get("prc.recall")),
            _f(r.get("classifier.synthetic_accuracy")), _f(r.get("utility.real_only_accuracy")),
            _f(r.get("utility.augmented_accuracy")), _f(r.get("utility.augmentation_gain")),
            r.get("sample_seconds", ""),
        ]  # fmt: skip
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def _f(value: Any) -> str:
    return "" if value is None else f"{float(value):.4g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="image_vae,image_gan,image_ddpm")
    parser.add_argument("--size", type=int, default=16, choices=(8, 16, 32))
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of training each")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="backend.option=JSON")
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/images.jsonl"))
    parser.add_argument("--table", action="store_true", help="print --out as Markdown, exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(args.out))
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        run(args)
    finally:
        torch.set_num_threads(previous)


def run(args: argparse.Namespace) -> None:
    """Fit, sample and score every backend (and the references), one JSON line each."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        backend, option = key.split(".", 1)
        overrides.setdefault(backend, {})[option] = json.loads(value)
    train, holdout = split(args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    extractor = ImageFeatureExtractor().fit(train, seed=0)
    extractor_seconds = time.perf_counter() - start
    extractor_path = args.out.with_suffix(f".extractor{args.size}.synth")
    extractor.save(extractor_path)
    common = {
        "size": args.size,
        "budget": args.budget,
        "threads": args.threads,
        "extractor": {**extractor.info(), "fit_seconds": round(extractor_seconds, 2)},
        "train_images": len(train),
        "holdout_images": len(holdout),
    }
    rows: list[dict[str, Any]] = []
    if not args.no_references:
        rows.append(run_reference("real (holdout)", holdout, train, holdout, extractor))
        rows.append(run_reference("shuffled pixels", shuffled(holdout), train, holdout, extractor))
    for row in rows:
        _write(args.out, {**common, **row, "load_before": round(os.getloadavg()[0], 2)})
    for name in args.backends.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            load = os.getloadavg()[0]
            row = run_backend(
                name, train, holdout, extractor, args.budget, args.per_class, seed,
                overrides.get(name, {}),
            )  # fmt: skip
            _write(args.out, {**common, **row, "load_before": round(load, 2)})


def _write(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "extractor"}), flush=True)


if __name__ == "__main__":
    main()
