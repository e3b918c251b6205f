"""Third-party warnings that tell a user nothing they can act on, silenced by message and category.

Each entry says why it is noise here. Only these exact messages go: other warnings, ours included,
and every error still show.
"""

from __future__ import annotations

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


def quiet_third_party_warnings() -> None:
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
