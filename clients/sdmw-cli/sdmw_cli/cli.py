"""The pieces every ``sdmw`` command shares: exit codes, messages, errors, output and waiting.

Exit codes: 0 ok, 1 the API refused the request or the job failed, 2 usage
error (or no/corrupt configuration), 3 the API (or AWS) cannot be reached or
the key is wrong, 4 a local file is missing, 5 a ``--wait`` ran out of time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sdmw_cli import config
from sdmw_cli.client import ApiError, AuthError, Client, UnreachableError

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_MISSING_FILE, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
#: Inference and endpoint deployment jobs both say "inprogress" until they end.
IN_PROGRESS = "inprogress"
FAILED = {"failed", "failure", "Fail"}
CANCELLED = "cancelled"

out = Console()
err = Console(stderr=True)

#: Tests replace this to hand the commands a client over an in-process app.
client_factory: Callable[[config.Settings], Client] = lambda s: Client(s.url, s.api_key)  # noqa: E731

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]
PollOption = Annotated[float, typer.Option("--poll-s", help="Seconds between status checks.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0, help="With --wait: give up after this many seconds (exit 5); default never."),
]


class WaitTimeout(Exception):
    """A ``--wait`` ran out of time; the job goes on."""


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr, never wrapped or read as markup."""
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def mapped_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turns SDK, AWS and file exceptions into a message and the documented exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except AuthError as error:
            raise fail(f"the API refused the key ({error.status_code}): {error.message}", EXIT_UNREACHABLE) from None
        except UnreachableError as error:
            raise fail(str(error), EXIT_UNREACHABLE) from None
        except ApiError as error:
            raise fail(str(error), EXIT_API) from None
        except WaitTimeout as error:
            raise fail(str(error), EXIT_TIMEOUT) from None
        except FileNotFoundError as error:
            raise fail(f"no such file: {error.filename or error}", EXIT_MISSING_FILE) from None
        except config.ConfigError as error:
            raise fail(str(error), EXIT_USAGE) from None
        except (NoCredentialsError, EndpointConnectionError) as error:
            raise fail(f"AWS: {error}", EXIT_UNREACHABLE) from None
        except ClientError as error:
            info = error.response.get("Error", {})
            message = f"AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message')}"
            code = EXIT_UNREACHABLE if info.get("Code") in AWS_AUTH_CODES else EXIT_API
            raise fail(message, code) from None
        except BotoCoreError as error:
            raise fail(f"AWS: {error}", EXIT_UNREACHABLE) from None

    return run


AWS_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
}


def settings() -> config.Settings:
    try:
        return config.load()
    except config.ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from None


def connect() -> Client:
    found = settings()
    if not found.url or not found.api_key:
        raise fail(
            "no API configured: run `sdmw configure --url URL --key KEY` or set SDMW_URL and SDMW_API_KEY", EXIT_USAGE
        )
    return client_factory(found)


def show(answer: Any, as_json: bool, summary: str | None = None) -> None:
    if as_json or summary is None:
        out.print_json(json.dumps(answer, default=str))
    else:
        out.print(summary, highlight=False, markup=False, soft_wrap=True)


def wait_until(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    poll_s: float,
    timeout_s: float | None,
    what: str,
    on_change: Callable[[Any], None] = lambda answer: None,
    on_each: Callable[[Any], None] = lambda answer: None,
) -> Any:
    """Reads until ``done``; ``on_change`` sees each new status, ``on_each`` every answer (its progress);
    WaitTimeout after ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = object()
    while True:
        answer = read()
        on_each(answer)
        status = answer.get("status")
        if status != last:
            on_change(answer)
            last = status
        if done(answer):
            return answer
        if deadline is not None and time.monotonic() + poll_s > deadline:
            raise WaitTimeout(
                f"gave up waiting after {timeout_s:g} s: {what} is still {status} (it goes on; check it later)"
            )
        time.sleep(poll_s)


def wait_until_finished(read: Callable[[], Any], poll_s: float, timeout_s: float | None = None, what: str = "the job"):
    return wait_until(read, lambda answer: answer.get("status") != IN_PROGRESS, poll_s, timeout_s, what)


def exit_if_failed(answer: Any) -> None:
    if answer.get("status") == CANCELLED:
        raise fail("the job was cancelled", EXIT_API)
    if answer.get("status") in FAILED:
        raise fail(f"job failed: {answer.get('error') or answer.get('sagemakerRaw') or 'no reason given'}", EXIT_API)


def progress_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


def require_path(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
