"""Third-party warnings and log lines that tell a user nothing they can act on, silenced by message.

Each entry says why it is noise here. Only these exact messages go: other warnings and log lines,
ours included, and every error still show.
"""

from __future__ import annotations

import logging
import re
import warnings

QUIET_WARNINGS = (
    # Lightning 2.6's own pytree helper on torch >= 2.10: a deprecation inside Lightning, at every fit.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # No validation data (photos without references, data.val_fraction=0): training without
    # validation is intended, and the final summary says there was none.
    (r"Total length of `\w+` across ranks is zero\. Please make sure", UserWarning),
    # Training again into a run directory (resume with ckpt_path=last, photos stages rerun): its
    # checkpoints are meant to be there and last.ckpt is replaced on purpose.
    (r"Checkpoint directory .* exists and is not empty", UserWarning),
    # The model summary sizes weights by the precision name and knows no mixed ones: under
    # precision auto (bf16-mixed) every run would warn that its size estimate uses 32 bits, which
    # is what bf16-mixed keeps the weights in anyway.
    (r"Precision \S+ is not supported by the model summary", UserWarning),
)


# (logger, message pattern) of info lines logged at every fit.
QUIET_LOG_LINES = (
    # Lightning 2.6 advertises a cloud logging service whenever a run has no LitLogger.
    ("lightning.pytorch.utilities.rank_zero", r"💡 Tip: For seamless cloud logging .*litlogger"),
)


class _DropMatching(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


def quiet_third_party_warnings() -> None:
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, pattern in QUIET_LOG_LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_DropMatching(pattern))
