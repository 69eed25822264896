"""A run's inputs: the demo sources and tasks written when the profile asks for them, and each source's
input fingerprint (what a collection task is cached on)."""

from __future__ import annotations

from data_catalog.collect import input_fingerprint
from data_catalog.demo_data import write_demo_eval_tasks, write_demo_sources
from data_catalog.loaders import SourceError
from kalm.run.paths import RunPaths
from kalm.run.profile import Profile


def prepare_inputs(profile: Profile, run: RunPaths) -> dict[str, str]:
    """Write the demo inputs when the profile asks for them; return each source's input fingerprint.

    A source whose input is missing gets ``missing: <why>`` instead of failing here, so that source's own
    collection task fails with its error and the other sources still collect.
    """
    if profile.demo_data:
        write_demo_sources(run.raw)
        write_demo_eval_tasks(run.demo_eval_tasks)
    resolved = profile.resolve_catalog(run)
    fingerprints = {}
    for source in resolved.catalog.sources:
        try:
            fingerprints[source.name] = input_fingerprint(resolved, source)
        except SourceError as error:
            fingerprints[source.name] = f"missing: {error}"
    return fingerprints
