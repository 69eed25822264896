"""The scoring protocol of an mteb task class, and the class of a local task's MTEB counterpart.

mteb keeps a task's protocol on its class, not in the data: the abstract task it derives from (the MTEB
``TwentyNewsgroupsClustering`` is the legacy k-means-per-set clustering, not the bootstrapped v2 clustering a
local Clustering task gets by default) and class attributes (``AmazonCounterfactualClassification`` trains its
classifier on 32 samples per label where the default is 8; an STS task's score range; retrieval's cut-offs). A
local task whose task.json names an ``mteb_counterpart`` is therefore built on that counterpart's class (see
:func:`kalm.evaluation.local_tasks.task_class`), and every score records :func:`protocol_of` its task class, so
a reader can tell which protocol produced a number and the results store never mixes two protocols.
"""

from __future__ import annotations

import enum
import functools
import inspect
from typing import TYPE_CHECKING, Any

from kalm.hashing import hash_value

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask

# Class attributes that hold data, loading state or prompts (the prompt is the encoder's business: KaLM's
# instruction, see kalm.evaluation.encoder), not how a task is scored.
NOT_PROTOCOL = frozenset({"metadata", "dataset", "data_loaded", "fast_loading", "abstask_prompt", "spec"})


class CounterpartError(ValueError):
    """A task.json's ``mteb_counterpart`` that mteb does not know, or whose task does not match the local one."""


@functools.cache
def counterpart_class(name: str) -> type[AbsTask]:
    """The class of the mteb task ``name`` (metadata only: nothing is downloaded)."""
    import mteb

    try:
        return type(mteb.get_task(name))
    except (KeyError, ValueError) as error:
        raise CounterpartError(f"mteb has no task named {name!r}") from error


def abstask_of(cls: type) -> type:
    """The abstract mteb task ``cls`` derives from (``AbsTaskClassification``, ``AbsTaskClusteringLegacy``…)."""
    from mteb.abstasks.abstask import AbsTask

    for klass in cls.__mro__:
        if (
            klass is not AbsTask
            and klass.__module__.startswith("mteb.abstasks")
            and issubclass(klass, AbsTask)
        ):
            return klass
    raise TypeError(f"{cls.__qualname__} is not an mteb task")


def _render(value: Any) -> Any:
    """A class attribute as JSON: plain values as they are, classes by name, other objects by repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return _render(value.value)
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, list | tuple):
        return [_render(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _render(v) for k, v in value.items()}
    if hasattr(value, "get_params"):  # a scikit-learn estimator (the classifier of Classification tasks)
        # mteb sets random_state from the task's seed on the shared class attribute at every evaluation, so it
        # is not part of what the class declares (and would make the protocol depend on what ran before).
        params = {k: v for k, v in value.get_params().items() if k != "random_state"}
        return {"class": type(value).__qualname__, "params": _render(params)}
    return repr(value)


def protocol_settings(cls: type) -> dict[str, Any]:
    """Every public, non-method class attribute an mteb task class sets or inherits from its abstract task.

    These are what scores a task besides its data and the model: the evaluator, the classifier and its
    sample sizes, the number of experiments, score ranges, column names, k values. Values are JSON.
    """
    from mteb.abstasks.abstask import AbsTask

    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is AbsTask or not (isinstance(klass, type) and issubclass(klass, AbsTask)):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") or name in NOT_PROTOCOL:
                continue
            if inspect.isfunction(raw) or isinstance(
                raw, staticmethod | classmethod | property | functools.cached_property
            ):
                continue
            names.add(name)
    return {name: _render(getattr(cls, name)) for name in sorted(names)}


def protocol_of(cls: type, counterpart: str | None = None) -> dict[str, Any]:
    """How a task of class ``cls`` is scored: its mteb counterpart (local tasks), the task class, the abstract
    task and :func:`protocol_settings`."""
    task_cls = counterpart_class(counterpart) if counterpart else cls
    return {
        "counterpart": counterpart,
        "task_class": f"{task_cls.__module__}.{task_cls.__qualname__}",
        "abstask": abstask_of(cls).__qualname__,
        "settings": protocol_settings(cls),
    }


def protocol_digest(protocol: dict[str, Any]) -> str:
    """A short digest of a protocol, part of a local task's revision (the results store's cache key)."""
    return hash_value(protocol)[:12]
