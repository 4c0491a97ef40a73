"""``signdigits models list | promote VERSION | rollback``: the model registry.

The workers switch to the promoted model between batches, without a restart (the next
batch each worker process claims is read by it); a promote or rollback of a model they
could not load is refused in one line, and nothing changes. None of them creates or
migrates a database (cli.preflight.database_for_reading): pointed at a wrong path they say
so, and a promote on a new, empty database has nothing to promote.
"""

from __future__ import annotations

import typer

from signdigits.cli.console import console, fail, output


def registry_failure(exc: Exception) -> str:
    """A registry refusal's line, with where to see the names when no model had that one."""
    from signdigits.db.registry import ModelNotFound

    return f"{exc} (see `signdigits models list`)" if isinstance(exc, ModelNotFound) else str(exc)


models_app = typer.Typer(help="The model registry: list, promote, roll back.",
                         no_args_is_help=True)


@models_app.command("list")
def list_command() -> None:
    """Every registered model, the newest first; '*' marks the one the workers serve."""
    from rich.table import Table

    from signdigits.cli.preflight import database_for_reading, settings_or_fail
    from signdigits.db.registry import list_models, promoted_model
    from signdigits.files.names import printable
    from signdigits.training.registry import default_model_info

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    with sessions() as session:
        rows = list_models(session)
        promoted = promoted_model(session)
    table = Table("", "name", "version", "parent", "reviews", "test accuracy", "created",
                  "promoted", box=None)
    for row in rows:
        figures = row.figures or {}
        lineage = figures.get("lineage") or {}
        test = (figures.get("evaluation") or {}).get("test") or {}
        accuracy = test.get("accuracy")
        table.add_row(
            "*" if promoted is not None and promoted.version == row.version else "",
            printable(row.name), row.version, row.parent or "",
            str(lineage.get("reviews", "")),
            f"{accuracy:.2%}" if isinstance(accuracy, float) else "",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else "")
    try:
        default = default_model_info(settings).version
    except ValueError as exc:
        default = f"unreadable ({exc})"
    table.add_row("" if promoted is not None else "*", "default", default, "", "", "", "", "",
                  end_section=True)
    output.print(table)


@models_app.command("promote")
def promote_command(
    model: str = typer.Argument(..., help="a registered model's name, version or version "
                                "prefix, or 'default'"),
) -> None:
    """Serve MODEL from every worker's next batch (checked first: refused if they cannot);
    'default' serves the configured or shipped model, whatever was promoted."""
    from signdigits.cli.preflight import database_for_reading, settings_or_fail
    from signdigits.training.registry import RegistryError, promote_model

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    try:
        change = promote_model(settings, sessions, model)
    except RegistryError as exc:
        fail(registry_failure(exc))
    console.print(f"promoted {change.name} ({change.after}; was {change.before}): the workers "
                  "serve it from their next batch", markup=False)


@models_app.command("rollback")
def rollback_command() -> None:
    """Serve the model promoted before the current one (or the default) from the next batch."""
    from signdigits.cli.preflight import database_for_reading, settings_or_fail
    from signdigits.training.registry import RegistryError, rollback_model

    settings = settings_or_fail()
    sessions = database_for_reading(settings)
    try:
        change = rollback_model(settings, sessions)
    except RegistryError as exc:
        fail(str(exc))
    console.print(f"rolled back {change.before}: the workers serve {change.name} "
                  f"({change.after}) from their next batch", markup=False)
