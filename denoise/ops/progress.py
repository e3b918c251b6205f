"""Progress of an inference protocol: network calls done out of the calls foreseen.

A protocol reports ``progress(done, total)`` after every network call (tile); ``total`` is what
the protocol foresees before it starts, so a progress bar knows its length from the first call.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


class CallCounter:
    """Counts network calls (``counter(steps)``) and reports them against ``total``, set by the protocol."""

    def __init__(self, progress: Progress | None):
        self.progress, self.done, self.total = progress, 0, 0

    def __call__(self, steps: int) -> None:
        self.done += steps
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))


class EnsembleProgress:
    """Progress over the transforms' runs: calls done so far, and the total the runs foresee."""

    def __init__(self, progress: Progress | None, transforms: int):
        self.progress, self.transforms, self.finished = progress, transforms, 0

    def of_transform(self, index: int) -> Progress | None:
        if self.progress is None:
            return None

        def report(done: int, total: int) -> None:
            self.progress(self.finished + done, self.finished + total * (self.transforms - index))
            if done == total:
                self.finished += done

        return report
