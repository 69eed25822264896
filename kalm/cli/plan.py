"""``kalm plan``: what a run of a profile will process and cost, before it runs (:mod:`kalm.run.plan`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kalm.cli.app import ProfileOpt, RunIdOpt, RunsDirOpt, app, checked, console


@app.command(rich_help_panel="Pipeline")
def plan(
    profile: ProfileOpt = "demo",
    run_id: RunIdOpt = "demo",
    runs_dir: RunsDirOpt = None,
    rates: Annotated[
        str | None,
        typer.Option(
            help="a benchmarks/throughput.json entry or a JSON file (default: by hardware and backbone)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the plan as JSON")] = False,
    calibrate: Annotated[
        Path | None, typer.Option(help="instead: measure the rates of this finished run of the profile")
    ] = None,
    name: Annotated[str | None, typer.Option(help="with --calibrate: the entry to write")] = None,
) -> None:
    """Rows, steps, tokens, time (GPU-hours on GPUs) and disk per stage, and which steps are already done."""
    from kalm.run.paths import RunPaths
    from kalm.run.plan import plan_markdown, plan_run
    from kalm.run.profile import load_profile
    from kalm.run.rates import calibrate as measure
    from kalm.run.rates import default_rates, load_rates, record_rates

    resolved = checked(lambda: load_profile(profile).with_overrides(), (ValueError,))
    if calibrate is not None:
        entry = name or default_rates(resolved)
        measured = measure(
            RunPaths(calibrate.resolve()), resolved, entry, f"run {calibrate.name} of {profile}"
        )
        record_rates(measured)
        console.print_json(measured.model_dump_json())
        return
    run = RunPaths.for_run(run_id, runs_dir)
    chosen = checked(lambda: load_rates(rates or default_rates(resolved)), (ValueError,))
    result = checked(lambda: plan_run(resolved, run, chosen), (ValueError,))
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    console.print(plan_markdown(result), highlight=False, soft_wrap=True)
