"""Few-shot data: episode and pair samplers, Omniglot, Lake's one-shot runs, sinusoids."""

from tfmeta.data.episodes import Episode, EpisodeSampler
from tfmeta.data.pairs import PairSampler
from tfmeta.data.validation import as_labelled_arrays, check_episode_request, check_support_set

__all__ = [
    "Episode",
    "EpisodeSampler",
    "PairSampler",
    "as_labelled_arrays",
    "check_episode_request",
    "check_support_set",
]
