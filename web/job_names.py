"""A job's name as the API takes it (on a submission, or alone to rename the job), and as
downloads are named after it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from signdigits.db.jobs import MAX_NAME, JobNameError, default_job_name, job_name
from signdigits.db.models import Job


def _a_job_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("job_name", "must be a string")
    try:
        return job_name(value)
    except JobNameError as exc:
        raise PydanticCustomError("job_name", str(exc)) from None


if TYPE_CHECKING:
    JobName = str | None
else:
    JobName = Annotated[Any, AfterValidator(_a_job_name),
                        WithJsonSchema({"type": "string", "maxLength": MAX_NAME})]


class JobRename(BaseModel):
    """`{"name": "cyril, second session"}`: the job's new name."""

    name: JobName = Field(description="1 to 200 characters, one line")

    @model_validator(mode="before")
    @classmethod
    def an_object(cls, data: Any) -> Any:
        data = _an_object(data)
        return {**data, "name": "" if data.get("name") is None else data["name"]}


def upload_name(filenames: list[str]) -> str:
    """An upload's default name: its one file's (a zip's without ``.zip``), or the first
    file's and how many more."""
    first = (filenames[0] if filenames else "upload").rsplit("/", 1)[-1]
    if first.lower().endswith(".zip") and len(first) > 4:
        first = first[:-4]
    more = len(filenames) - 1
    return default_job_name(first + (f" and {more:,} more" if more > 0 else ""))


def download_headers(job: Job, extension: str) -> dict[str, str]:
    """``Content-Disposition`` naming a download after the job (``cyril.csv``): an ASCII
    name for old clients, the exact one (RFC 6266's ``filename*``) for the rest."""
    exact = f"{job.name}.{extension}".replace("/", "_").replace("\\", "_")
    plain = re.sub(r"[^A-Za-z0-9 ._()-]", "_", exact).strip(" .") or f"{job.id}.{extension}"
    return {"Content-Disposition": f'attachment; filename="{plain}"; '
                                   f"filename*=UTF-8''{quote(exact, safe='')}"}


def _an_object(data: Any) -> Any:
    if not isinstance(data, dict):
        raise PydanticCustomError("json_object", 'send a JSON object: {"name": "..."}')
    return data
