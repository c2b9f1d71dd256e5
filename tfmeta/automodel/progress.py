"""AutoModel's progress lines, and the search callback that reports each architecture trial.

One line per finished trial, whatever the task:

    [trial 2/10] normal[...] reduce[...]  score=0.9722  best=0.9722  elapsed=41s

Example:

>>> progress = TrialProgress(print, total=10, start=time.time())
>>> search = ArchitectureSearch(space, build_model=child, callbacks=[progress])  # doctest: +SKIP
>>> search.search(x, y, validation_data=(xv, yv), epochs=3)                    # doctest: +SKIP
>>> progress.seconds                                    # {trial_id: seconds}  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Callable


def progress_line(done: int, total: int, architecture: str, score: float, best: float, elapsed: float) -> str:
    """The progress line of a finished trial (architecture or learner)."""
    return (f"[trial {done}/{total}] {architecture}  score={score:.4f}  best={best:.4f}  "
            f"elapsed={elapsed:.0f}s")


class TrialProgress:
    """Logs a progress line after each architecture trial and keeps each trial's seconds.

    A `tfmeta.nas.search.SearchCallback` (not subclassed, so that importing AutoModel does
    not import KerasTuner).

    Args:
        log: Called with each line (e.g. `print`).
        total: Trials the search runs, for the `[trial i/total]` count.
        start: `time.time()` that the elapsed seconds count from.
        sign: 1 when a higher score is better, -1 when the search minimises its objective
            (a loss); lines then show minus the loss, higher is better as on the leaderboard.
        on_best: Optional `f(arch)` called with the best completed architecture (its readable
            string) after each trial, e.g. to free the models of the others.

    Attributes:
        seconds: `{trial_id: wall time of the trial in seconds}`.
    """

    def __init__(self, log: Callable[[str], None], total: int, start: float, sign: float = 1.0,
                 on_best: Callable[[str], None] | None = None):
        self.log = log
        self.total = total
        self.start = start
        self.sign = sign
        self.on_best = on_best
        self.seconds: dict[str, float] = {}

    def on_trial_end(self, search, record: dict) -> None:
        self.seconds[record["trial_id"]] = record["seconds"]
        done = search.completed()
        best = float("nan")
        if done:
            best_record = max(done, key=lambda r: self.sign * float(r["score"]))
            best = self.sign * float(best_record["score"])
            if self.on_best is not None:
                self.on_best(best_record["arch"])
        score = float("nan") if record["score"] is None else self.sign * float(record["score"])
        self.log(progress_line(len(done), self.total, record["arch"], score, best, time.time() - self.start))
