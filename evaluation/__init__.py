"""Evaluation suite: score a synthetic table against the real one (and a holdout).

``evaluate`` returns an ``EvaluationReport`` with fidelity, detection, alpha-precision,
utility, FID, bias and privacy-risk scores; see docs/evaluation.md.
"""

from evaluation.core import evaluate
from evaluation.images import ImageReport, evaluate_images
from evaluation.report import EvaluationReport
from evaluation.validation import SECTIONS

__all__ = ["SECTIONS", "EvaluationReport", "ImageReport", "evaluate", "evaluate_images"]
