"""``kalm serve`` / ``kalm stop``: the local Prefect server, work pool, deployments and worker (kalm.cli.control)."""

from __future__ import annotations

from typing import Annotated

import typer

from kalm.cli.app import app, checked, console


@app.command(rich_help_panel="Prefect server")
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="address the server listens on (default KALM_SERVER_HOST, 127.0.0.1); beyond loopback "
            "only with PREFECT_SERVER_API_AUTH_STRING set"
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default KALM_SERVER_PORT, 4200)")] = None,
) -> None:
    """Start a local Prefect server, create the work pool, deploy ``prefect.yaml``, start a worker."""
    from kalm.cli import control
    from kalm.settings import get_settings

    overrides = {k: v for k, v in {"server_host": host, "server_port": port}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    checked(lambda: control.check_auth(settings), (control.AuthRequired,))
    control.start_server(settings)
    control.deploy(settings)
    control.start_worker(settings)
    url = control.ui_api_url(settings).removesuffix("/api")
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
