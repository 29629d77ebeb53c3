"""Does CTGAN's generator update lose quality by reusing the critic's batch?

synthgen's CTGAN (one critic update per generator update) trains the generator on the
conditions, noise and generated rows the critic has just been trained on; the CTGAN
paper's loop, like SDV's, generates a fresh batch for the generator update. This script
fits both variants on the harness's Adult data for the given seeds and scores them with
the harness's SDMetrics QualityReport on the same fixed 10,000-row real sample.

Run from the repository root (about 9 minutes per fit on 2 cores):

    python -m benchmarks.ctgan_batch_reuse --seeds 0 1 --epochs 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.harness import BenchmarkConfig, prepare
from benchmarks.metrics import quality_scores
from synthgen import Schema
from synthgen.backends.ctgan import CTGAN


class FreshBatchCTGAN(CTGAN):
    """CTGAN whose generator update draws a fresh batch (the paper's / SDV's loop)."""

    def _train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        n = batch.shape[0]
        for _ in range(int(self.discriminator_steps)):
            column, category, cond = self._draw_conditions(n)
            with torch.no_grad():
                fake = self._fake(cond)[1]
            real, real_cond = self._real_rows(column, category, cond)
            d_loss = self._critic_step(torch.cat([fake, cond], 1), torch.cat([real, real_cond], 1))
        column, category, cond = self._draw_conditions(n)
        logits, fake = self._fake(cond)
        g_loss = self._generator_step(logits, fake, cond, column, category)
        return {"loss_g": g_loss, "loss_d": d_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=None, help="folder of the shared datasets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        config = BenchmarkConfig(["ctgan"], ["adult"], folder, data_dir=args.data_dir)
        data = prepare(config, "adult", Path(folder))
        train = pd.read_parquet(data.train)
        real = pd.read_parquet(data.quality_real)
        schema = Schema.from_dict(json.loads(data.schema.read_text()))
        for seed in args.seeds:
            for name, cls in (("reuse (synthgen)", CTGAN), ("fresh batch", FreshBatchCTGAN)):
                model = cls(epochs=args.epochs, batch_size=500, seed=seed, device="cpu")
                start = time.perf_counter()
                model.fit(train, schema)
                seconds = time.perf_counter() - start
                scores = quality_scores(real, model.sample(10_000, seed=seed + 1), schema)
                rounded = {k: round(v, 4) for k, v in scores.items()}
                print(f"{name:17s} seed {seed}: fit {seconds:.1f} s {rounded}", flush=True)


if __name__ == "__main__":
    main()
