"""The command line: ``snapreport serve|chat|sessions|diagram|dispatch``.

Settings come from the environment (``SNAPREPORT_...``) and ``.env``. Expected errors (bad
settings, a store that is away, an unknown user) print one line and exit with status 1; only a
bug shows a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from snapreport.config import Settings
from snapreport.errors import ConfigurationError, SnapreportError

T = TypeVar("T")

FACTORY: Final = "snapreport.channels.http.app:app_from_env"
GRACEFUL_SHUTDOWN_SECONDS: Final = 30

cli = typer.Typer(
    name="snapreport",
    help="Snap-and-report assistant: photo → alarm → work order.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sessions_cli = typer.Typer(help="List, show and clear sessions.", no_args_is_help=True)
cli.add_typer(sessions_cli, name="sessions")
dispatch_cli = typer.Typer(help="Routing rules and work-order dispatch.", no_args_is_help=True)
cli.add_typer(dispatch_cli, name="dispatch")


def out() -> Console:
    return Console()


def err() -> Console:
    return Console(stderr=True)


def fail(message: str) -> NoReturn:
    err().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg,unused-ignore]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "__".join(str(p) for p in first["loc"]).upper()
        fail(f"setting SNAPREPORT_{where}: {first['msg']}")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; expected errors become one line and exit status 1."""
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except SnapreportError as exc:
        fail(f"{exc.message} ({exc.code})")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


# -- serve --------------------------------------------------------------------------------------


def check_serve(settings: Settings, host: str, workers: int) -> bool:
    """Refuse settings that cannot serve as asked; True if the service will run open."""
    from snapreport.channels.http.auth import check_binding

    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if workers > 1 and settings.session.backend == "memory":
        raise ConfigurationError(
            f"--workers {workers} needs sessions shared by every worker: the memory store lives "
            "in one process. Set SNAPREPORT_SESSION__BACKEND=redis and SNAPREPORT_SESSION__URL "
            "(or sqlite, on one machine)."
        )
    open311 = settings.open311
    if workers > 1 and open311.api_keys and not open311.media_secret.get_secret_value():
        raise ConfigurationError(
            f"--workers {workers} with Open311 needs one secret for its photo links, or a link "
            "made by one worker fails on the others. Set SNAPREPORT_OPEN311__MEDIA_SECRET "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return check_binding(settings, host)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (more than one needs Redis).")] = 1,
    graceful: Annotated[
        int, typer.Option(help="Seconds to let in-flight requests finish on shutdown.")
    ] = GRACEFUL_SHUTDOWN_SECONDS,
) -> None:
    """Serve the HTTP API, the web chat page and the WeCom callback."""
    import uvicorn

    from snapreport.logs import configure_logging, get_logger, uvicorn_log_config

    settings = load_settings()
    configure_logging(settings.log_level)
    try:
        open_service = check_serve(settings, host, workers)
    except ConfigurationError as exc:
        fail(exc.message)
    log = get_logger("snapreport.cli")
    if open_service:
        log.warning("no API or admin token set: the service is open to anyone on this machine")
    log.info("serving", url=f"http://{host}:{port}", workers=workers)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        access_log=False,  # one access line per request comes from our middleware
        log_config=uvicorn_log_config(),
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=graceful,
        server_header=False,
    )


# -- chat and diagram -----------------------------------------------------------------------------


@cli.command()
def chat(
    user: Annotated[str, typer.Option("--user", help="Your user id.")],
    url: Annotated[
        str | None, typer.Option(help="A running server (else the app runs in this process).")
    ] = None,
    token: Annotated[str | None, typer.Option(help="API token for --url.")] = None,
) -> None:
    """Chat in the terminal (/photo PATH sends an image)."""
    from snapreport.channels.terminal import run_chat

    settings = load_settings()
    run(lambda: run_chat(user_id=user, settings=settings, url=url, token=token))


@cli.command()
def diagram() -> None:
    """Print the dialogue's state diagram (Mermaid)."""
    from snapreport.workflow.diagram import mermaid

    sys.stdout.write(mermaid().rstrip("\n") + "\n")


# -- dispatch --------------------------------------------------------------------------------------


@dispatch_cli.command("check")
def dispatch_check(
    file: Annotated[Path, typer.Argument(help="The rules file (TOML).")],
) -> None:
    """Check a routing rules file; print its teams and rules, or the line that is wrong."""
    from snapreport.dispatch.rules import load_rules

    settings = load_settings()
    try:
        rules = load_rules(file, catalog=settings.alarm_types)
    except ConfigurationError as exc:
        fail(exc.message)
    console = out()
    for team in rules.teams.values():
        console.print(
            f"team {team.id} ({team.name}): {team.assign}, members {', '.join(team.members) or '-'}"
            f"; leads {', '.join(team.leads) or '-'}",
            highlight=False,
        )
    for index, rule in enumerate(rules.rules, 1):
        types = ", ".join(sorted(rule.alarm_types)) if rule.alarm_types else "any type"
        places = ", ".join(rule.locations) if rule.locations else "anywhere"
        console.print(
            f"rule {index}: {types} @ {places} → {rule.route.team.id} "
            f"(accept {rule.route.accept_within}, resolve {rule.route.resolve_within})",
            highlight=False,
        )
    if rules.default is not None:
        console.print(f"default → {rules.default.team.id}", highlight=False)
    console.print(f"{file}: ok", highlight=False)


@dispatch_cli.command("diagram")
def dispatch_diagram(
    write: Annotated[bool, typer.Option(help="Rewrite the diagram in docs/dispatch.md.")] = False,
) -> None:
    """Print the order lifecycle diagram (Mermaid), or rewrite it in docs/dispatch.md."""
    from snapreport.dispatch.diagram import BLOCK

    raise typer.Exit(BLOCK.main(["--write"] if write else []))


# -- sessions --------------------------------------------------------------------------------------


def _memory_note(settings: Settings) -> None:
    if settings.session.backend == "memory":
        err().print(
            "note: the memory session store lives inside the server process; this command only "
            "sees its own (empty) store. Use the admin API or the sqlite/redis backend.",
            style="yellow",
        )


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


@sessions_cli.command("ls")
def sessions_ls(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Sessions per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Start after this user id.")] = None,
) -> None:
    """List active sessions."""
    from snapreport.bootstrap import build

    settings = load_settings()
    _memory_note(settings)

    async def main() -> None:
        async with build(settings) as app:
            engine = app.engine
            active = await engine.active_count()
            page = await engine.list_active(cursor, limit)
            now = engine.now()
            ttl = engine.config.ttl_seconds
        table = Table(title=f"{active} active session(s)")
        for column in ("user", "state", "turns", "last active", "expires in"):
            table.add_column(column)
        for s in page.sessions:
            table.add_row(
                s.user_id,
                s.state,
                str(len(s.history)),
                _when(s.updated_at),
                _ago(max(0.0, s.expires_at(ttl) - now)),
            )
        out().print(table)
        if page.next_cursor:
            out().print(f"more: snapreport sessions ls --cursor {page.next_cursor}")

    run(main)


@sessions_cli.command("show")
def sessions_show(user: Annotated[str, typer.Argument(help="The user id.")]) -> None:
    """Show one user's session: state, pending slots, history."""
    from snapreport.bootstrap import build

    settings = load_settings()
    _memory_note(settings)

    async def main() -> None:
        async with build(settings) as app:
            info = await app.engine.peek(user)
            now = app.engine.now()
        if info is None:
            fail(f"no session for user {user!r}")
        session = info.session
        status = "expired" if info.expired else f"expires in {_ago(info.expires_at - now)}"
        out().print(f"[bold]{session.user_id}[/]  state [cyan]{session.state}[/]  {status}")
        for name in session.slots.__struct_fields__:
            value = getattr(session.slots, name)
            if value not in ("", None, 0, []):
                out().print(f"  {name}: {value}", highlight=False)
        for message in session.history.messages():
            images = "".join(f" [photo {i.key}]" for i in message.images)
            out().print(f"[dim]{message.role}:[/] {message.text}{images}", highlight=False)

    run(main)


@sessions_cli.command("clear")
def sessions_clear(user: Annotated[str, typer.Argument(help="The user id.")]) -> None:
    """Delete one user's session."""
    from snapreport.bootstrap import build

    settings = load_settings()
    _memory_note(settings)

    async def main() -> bool:
        async with build(settings) as app:
            return await app.engine.clear(user)

    if run(main):
        out().print(f"cleared the session of {user}")
    else:
        fail(f"no session for user {user!r}")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def main() -> None:
    """Entry point of the ``snapreport`` console script."""
    cli()
