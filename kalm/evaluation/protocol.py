"""The small, model-agnostic contract between the pipeline and the evaluation code.

Training produces checkpoints in several shapes (sentence-transformers folders today, other formats later);
evaluation only needs "texts in, unit vectors out" plus a stable identity for the model, so that is all the
`TextEmbedder` protocol asks for. `TaskScore` is the summary row other stages (reports, model selection)
consume, so it is a plain pydantic model rather than an mteb object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict


@runtime_checkable
class TextEmbedder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors.

    `revision` must change whenever the weights change (a content hash), because result files are keyed on it
    and a stale score must never be mistaken for the current model's.
    """

    name: str
    revision: str

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, each row of unit L2 norm."""
        ...


class TaskScore(BaseModel):
    """The main score of one task, on mteb's 0-1 scale.

    `main_score_name` is the metric key in mteb's result JSON (e.g. `cosine_spearman`, `ndcg_at_10`,
    `map_at_1000` for the task.json alias `map`), so the number can be traced back to the full result file.
    `protocol` is how the task was scored (`kalm.evaluation.counterpart.protocol_of`: the MTEB counterpart of
    a local task, the abstract task and its settings); None for scores recorded before protocols were.
    """

    model_config = ConfigDict(frozen=True)

    task: str
    task_type: str
    languages: list[str]
    main_score_name: str
    main_score: float
    split: str
    protocol: dict[str, Any] | None = None


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32, leaving all-zero rows at zero instead of producing NaNs."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d array of embeddings, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return (arr / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
