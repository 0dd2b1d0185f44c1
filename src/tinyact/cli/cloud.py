"""``tinyact cloud …``: run the cloud service, manage devices, export predictions, upgrade the database."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from tinyact.console import console, progress_bar
from tinyact.errors import TinyActError

app = typer.Typer(
    help="Cloud service: classify latents from edge devices, store, send back, export, dashboard.",
    no_args_is_help=True,
)
device_app = typer.Typer(help="Register, list, rotate the keys of, and revoke edge devices.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(db_app, name="db")

DB_HELP = "Database URL (sqlite:///FILE, postgresql+psycopg://USER@HOST/DB) or SQLite file [default: $TINYACT_HOME/cloud/tinyact.db]."


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address [default: 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [default: 8000]."),
    db: str = typer.Option(None, help=DB_HELP),
    model: Path = typer.Option(None, help="Bundle (`tinyact bundle`, table1's RUN/bundle) or classifier folder from "
                               "`tinyact classify fit` (becomes the active model)."),
    workers: int = typer.Option(None, help="Worker processes [default: 1]."),
    mqtt: str = typer.Option(None, help="MQTT broker URL (mqtt://HOST:PORT): publish results, ingest clips."),
    batch_window_ms: float = typer.Option(None, help="Micro-batch window in ms; 0 = off [default: 2]."),
    config: Path = typer.Option(None, help="YAML file with CloudConfig fields (options override it)."),
) -> None:
    """Serve the API and dashboard (admin token from $TINYACT_ADMIN_TOKEN, viewer token from $TINYACT_VIEWER_TOKEN)."""
    from tinyact.cloud.config import ADMIN_TOKEN_ENV, CloudConfig, resolve_db_url
    from tinyact.cloud.db.engine import check_connection, make_engine
    from tinyact.cloud.server import run_server

    cfg = CloudConfig.from_yaml(
        config, host=host, port=port, db=db, model=model, workers=workers, mqtt=mqtt, batch_window_ms=batch_window_ms
    )
    db_url = resolve_db_url(cfg.db)
    cfg = cfg.model_copy(update={"db": db_url})
    # Fail here with one line, not inside uvicorn's start-up with a traceback.
    if cfg.model is not None:
        from tinyact.classifiers.bundle import is_bundle, load_bundle

        if is_bundle(cfg.model):
            load_bundle(cfg.model)  # its classifier and encoder belong together, or one line saying why not
        elif not (Path(cfg.model) / "classifier.json").is_file():
            raise TinyActError(f"--model {cfg.model} is not a saved classifier folder (no classifier.json) nor a bundle "
                               "(no bundle.yaml); see `tinyact classify fit` or `tinyact bundle`")
    engine = make_engine(db_url, pool_size=1)
    check_connection(engine)
    engine.dispose()
    if cfg.mqtt:
        from tinyact.wire import parse_mqtt_url

        parse_mqtt_url(cfg.mqtt)
    if not os.environ.get(ADMIN_TOKEN_ENV):
        console.print(f"[yellow]{ADMIN_TOKEN_ENV} is not set: admin endpoints (model swap, devices, export) are off[/]")
    shown = cfg.model_dump(mode="json")
    console.print(f"TinyAct cloud on http://{cfg.host}:{cfg.port}  (dashboard /, API docs /docs)")
    console.print(f"config: {shown}", highlight=False)
    run_server(cfg)


@device_app.command("add")
def device_add(
    name: str = typer.Argument(..., help="Device name: letters, digits, _ . : - (max 64)."),
    db: str = typer.Option(None, help=DB_HELP),
) -> None:
    """Register a device and print its key once (only a hash is stored). The key is alone on the last line."""
    from tinyact.cloud.devices import add_device

    new = add_device(db, name)
    console.print(f"added device {new.name!r}; its key (shown only now) is on the next line:")
    typer.echo(new.key)


@device_app.command("list")
def device_list(db: str = typer.Option(None, help=DB_HELP)) -> None:
    """List devices (name, key hint, created, revoked)."""
    from tinyact.cloud.devices import list_devices

    table = Table(title="devices")
    for column in ("name", "key", "created", "status"):
        table.add_column(column)
    for d in list_devices(db):
        status = "active" if d.active else f"revoked {d.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(d.name, d.key_hint + "…", f"{d.created_at:%Y-%m-%d %H:%M}", status)
    console.print(table)


@device_app.command("revoke")
def device_revoke(
    name: str = typer.Argument(..., help="Device name."),
    db: str = typer.Option(None, help=DB_HELP),
) -> None:
    """Revoke a device's key (its stored predictions stay)."""
    from tinyact.cloud.devices import revoke_device

    d = revoke_device(db, name)
    console.print(f"device {d.name!r} revoked at {d.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@device_app.command("rotate")
def device_rotate(
    name: str = typer.Argument(..., help="Device name."),
    db: str = typer.Option(None, help=DB_HELP),
) -> None:
    """Give a device a new key (printed once, alone on the last line); its old key stops working at once."""
    from tinyact.cloud.devices import rotate_device

    new = rotate_device(db, name)
    console.print(f"new key for device {new.name!r} (the old one no longer works; shown only now) on the next line:")
    typer.echo(new.key)


def _time(value: str | None, name: str) -> datetime | None:
    from tinyact.cloud.analytics import parse_time

    try:
        return parse_time(value)
    except ValueError as error:
        raise TinyActError(f"--{name} {error}") from None


@app.command()
def export(
    out: Path = typer.Option(..., help="File to write (.csv, .jsonl or .parquet)."),
    db: str = typer.Option(None, help=DB_HELP),
    format: str = typer.Option(None, "--format", help="csv, jsonl or parquet [default: from the file suffix]."),
    start: str = typer.Option(None, "--from", help="Captured at or after (ISO 8601; UTC if no zone)."),
    end: str = typer.Option(None, "--to", help="Captured before (ISO 8601)."),
    camera: str = typer.Option(None, help="Camera name, or DEVICE/CAMERA."),
    label: str = typer.Option(None, help="Predicted label."),
    device: str = typer.Option(None, help="Device name."),
) -> None:
    """Export predictions from the database, streamed (works while the service runs)."""
    from tinyact.cloud.analytics import RowFilter
    from tinyact.cloud.config import resolve_db_url
    from tinyact.cloud.db.engine import check_connection, make_engine
    from tinyact.cloud.export import export_to_file, format_for

    fmt = format_for(out, format)
    engine = make_engine(resolve_db_url(db), pool_size=1)
    check_connection(engine)
    row_filter = RowFilter(_time(start, "from"), _time(end, "to"), camera, label, device)
    try:
        with progress_bar(f"export {out.name}", total=None, unit="row") as bar:
            rows = export_to_file(engine, out, fmt, row_filter, on_rows=bar.advance)
    finally:
        engine.dispose()
    console.print(f"wrote {rows} predictions to {out}")


@app.command("model")
def model_swap(
    path: str = typer.Argument(..., help="Bundle or classifier folder, as the server sees it (or `activate`, then it)."),
    target: Path = typer.Argument(None, help="With `activate`: the bundle or classifier folder.", show_default=False),
    url: str = typer.Option("http://127.0.0.1:8000", help="Service URL."),
    allow_encoder_change: bool = typer.Option(False, help="Accept a classifier of another encoder / latent size."),
) -> None:
    """Make a running service switch to another bundle or classifier: `tinyact cloud model [activate] PATH`
    (needs $TINYACT_ADMIN_TOKEN)."""
    import httpx

    if path == "activate" and target is not None:
        path = str(target)
    elif target is not None:
        raise TinyActError(f"unexpected second argument {target}: use `tinyact cloud model activate PATH`")

    from tinyact.cloud.config import ADMIN_TOKEN_ENV, env_token

    token = env_token(ADMIN_TOKEN_ENV)
    if token is None:
        raise TinyActError(f"set {ADMIN_TOKEN_ENV} to the service's admin token")
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/admin/model",
            json={"path": str(path), "allow_encoder_change": allow_encoder_change},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
    except httpx.HTTPError as error:
        raise TinyActError(f"cannot reach {url}: {error}") from None
    if response.status_code == 401:
        raise TinyActError(
            f"the service refused the admin token: set {ADMIN_TOKEN_ENV} to the token the service was started with "
            f"(its {ADMIN_TOKEN_ENV})"
        )
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:200]
        raise TinyActError(f"the service refused: {response.status_code} {detail}")
    info = response.json()
    console.print(f"active model: {info['version']} ({info['kind']}, {len(info['labels'])} labels, {info['latent_dim']}-d)")


@db_app.command("upgrade")
def db_upgrade(db: str = typer.Option(None, help=DB_HELP)) -> None:
    """Create or upgrade the schema to the newest migration."""
    from tinyact.cloud.config import resolve_db_url
    from tinyact.cloud.db.engine import current_revision, make_engine, upgrade_database

    engine = make_engine(resolve_db_url(db), pool_size=1)
    before = current_revision(engine) if _exists(engine) else None
    upgrade_database(engine)
    after = current_revision(engine)
    engine.dispose()
    console.print(f"database at revision {after}" + (f" (was {before})" if before != after else " (already current)"))


def _exists(engine) -> bool:
    from tinyact.cloud.db.engine import check_connection

    check_connection(engine)
    return True


# ---- MQTT broker logins ------------------------------------------------------------------------------------
@app.command("broker-config")
def broker_config(
    out: Path = typer.Option(..., help="Folder for mosquitto.conf, passwd and acl (created)."),
    db: str = typer.Option(None, help=DB_HELP),
    listen: str = typer.Option("127.0.0.1:1883", help="HOST:PORT Mosquitto listens on (0.0.0.0:1883 for all)."),
    cloud_account: str = typer.Option("tinyact-cloud", help="Broker login of the cloud service."),
    run_as: str = typer.Option(None, help="Mosquitto's `user` when started as root [default: mosquitto]."),
) -> None:
    """Write Mosquitto's config, password file and ACL for the active devices and the cloud account: each
    device logs in as itself and may only publish its own clips and read its own results and errors; only the
    cloud account writes results. Passwords derive from $TINYACT_MQTT_SECRET. Run again after `device add` or
    `device revoke`, then send mosquitto SIGHUP."""
    from tinyact.cloud.broker import MQTT_SECRET_ENV, mqtt_secret, write_broker_config
    from tinyact.cloud.devices import list_devices

    secret = mqtt_secret()
    names = [d.name for d in list_devices(db) if d.active]
    files = write_broker_config(out, names, secret, cloud_account=cloud_account, listen=listen, run_as=run_as)
    console.print(f"wrote {files.conf}, {files.passwd.name} ({len(names)} device(s) + {files.cloud_account!r}), "
                  f"{files.acl.name}", highlight=False)
    console.print(f"run: mosquitto -c {files.conf}   reload after device add/revoke: kill -HUP <mosquitto pid>\n"
                  f"cloud: tinyact cloud serve --mqtt mqtt://{listen} with ${MQTT_SECRET_ENV} set (logs in as "
                  f"{files.cloud_account!r}); devices: `tinyact cloud device mqtt-password NAME`", highlight=False)


@device_app.command("mqtt-password")
def device_mqtt_password(name: str = typer.Argument(..., help="Device name (its MQTT username).")) -> None:
    """Print a device's MQTT password (derived from $TINYACT_MQTT_SECRET), alone on the last line: give it to
    the device as $TINYACT_MQTT_PASSWORD (or transport.mqtt_password_file); its username is the device name."""
    from tinyact.cloud.broker import derive_password, mqtt_secret

    password = derive_password(mqtt_secret(), name)
    console.print(f"MQTT login of device {name!r}: username {name!r}, password on the next line:")
    typer.echo(password)
