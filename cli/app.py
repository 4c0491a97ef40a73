"""``signdigits``: one command for the whole pipeline; this file lists every subcommand.

Each command is a plain function in the module of its subject; heavy imports happen
inside it, so ``signdigits --help`` and a fast command never pay for TensorFlow, the
web stack or the model.
"""

from __future__ import annotations

import typer

from signdigits.cli import (
    adapting,
    bench,
    database,
    hands,
    jobs,
    models,
    predict,
    reviews,
    training,
    web,
    webhooks,
    workers,
)
from signdigits.cli.preflight import OneLineErrors

app = OneLineErrors(
    add_completion=False,
    no_args_is_help=True,
    help="Classify folders of sign-language digit photos with Celery workers.",
)

# A job, from a folder to its results.
app.command()(jobs.run)
app.command()(jobs.submit)
app.command()(jobs.status)
app.command()(jobs.results)
app.command()(jobs.resume)
app.command()(jobs.cancel)
app.command()(jobs.delete)
# Workers, and watching them.
app.command()(workers.worker)
app.command()(workers.ready)
app.command()(workers.flower)
# The web pages and HTTP API.
app.command()(web.serve)
# People's answers to what the model was unsure of, and training data from them.
app.command()(reviews.review)
app.command("export-reviews")(reviews.export_reviews_command)
# The model.
app.command()(training.train)
app.command()(training.cv)
app.command()(training.evaluate)
app.command("export-onnx")(training.export_onnx_command)
app.command()(adapting.adapt)
app.command()(adapting.compare)
app.command()(predict.predict)
app.command("fetch-hand-models")(hands.fetch_hand_models)
# Measuring.
app.command()(bench.bench)
app.command("bench-web")(bench.bench_web)

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
db_app.command("upgrade")(database.db_upgrade)
app.add_typer(db_app, name="db")
app.add_typer(models.models_app, name="models")
app.add_typer(webhooks.webhook_app, name="webhook")
