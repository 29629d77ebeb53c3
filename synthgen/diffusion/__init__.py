"""Building blocks of tabular diffusion, kept apart the way diffusers splits them.

``schedule`` holds the noise schedule (how much signal survives at step ``t``) and its
strided sub-schedules; ``gaussian`` and ``multinomial`` are the forward/reverse
processes for continuous values and one-hot groups; ``denoiser`` is the network. The
``TabDDPM`` backend (``synthgen.backends.tabddpm``) is the pipeline that ties them
together; none of these modules knows about DataFrames.
"""

from synthgen.diffusion.denoiser import MLPDenoiser, PaddedDenoiser, sinusoidal_embedding
from synthgen.diffusion.gaussian import GaussianDiffusion
from synthgen.diffusion.multinomial import MultinomialDiffusion
from synthgen.diffusion.schedule import NoiseSchedule

__all__ = [
    "GaussianDiffusion",
    "MLPDenoiser",
    "MultinomialDiffusion",
    "NoiseSchedule",
    "PaddedDenoiser",
    "sinusoidal_embedding",
]
