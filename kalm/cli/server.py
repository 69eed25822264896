"""``kalm serve`` / ``kalm stop``: the local Prefect server, work pool, deployments and worker (kalm.cli.control)."""

from __future__ import annotations

from kalm.cli.app import app, console


@app.command(rich_help_panel="Prefect server")
def serve() -> None:
    """Start a local Prefect server (127.0.0.1), create the work pool, deploy ``prefect.yaml``, start a worker."""
    from kalm.cli import control
    from kalm.settings import get_settings

    settings = get_settings()
    control.start_server(settings)
    control.deploy(settings)
    control.start_worker(settings)
    url = control.api_url(settings).removesuffix("/api")
    console.print(f"Prefect UI: {url}  (worker on pool {settings.work_pool!r}; logs in {settings.state_dir})")
    console.print(
        f"export PREFECT_API_URL={control.api_url(settings)}  # then: prefect deployment run build-data/demo"
    )


@app.command(rich_help_panel="Prefect server")
def stop() -> None:
    """Stop the worker and server started by ``kalm serve``."""
    from kalm.cli import control
    from kalm.settings import get_settings

    stopped = control.stop(get_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
