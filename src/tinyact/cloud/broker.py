"""Broker credentials and ACLs for MQTT: every device logs in to Mosquitto as itself and may only touch its
own topics; only the cloud's account may write results and errors.

``tinyact cloud broker-config --out DIR`` writes three files for the registered (not revoked) devices::

    mosquitto.conf   listener, allow_anonymous false, password_file, acl_file (run: mosquitto -c DIR/mosquitto.conf)
    passwd           device-name:$7$101$<salt>$<PBKDF2-SHA512>   (Mosquitto's own format; hashes only)
    acl              pattern write tinyact/%u/+/clip             a device publishes only its own clips
                     pattern read  tinyact/%u/+/result           ... reads only its own results
                     pattern read  tinyact/%u/+/error            ... and refusals
                     user tinyact-cloud                          the service: reads all clips, the only
                     topic read tinyact/+/+/clip                 writer of results and errors
                     topic write tinyact/+/+/result
                     topic write tinyact/+/+/error

Passwords are never stored. Each one is derived from one cloud-side secret, ``$TINYACT_MQTT_SECRET``
(HMAC-SHA256 of the account's role and name), so the files can be rewritten at any time (after
``device add`` or ``device revoke``) without a database of passwords, and the operator can read a
device's password again with ``tinyact cloud device mqtt-password NAME``. A revoked device is left out of
``passwd``; Mosquitto reloads both files on SIGHUP and disconnects clients whose login is no longer valid.
Changing the secret changes every password (rotate by rewriting the files and the devices' settings).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

from tinyact.errors import ConfigError
from tinyact.wire import DEVICE_ID_PATTERN, mqtt_clip_topic, mqtt_error_topic, mqtt_result_topic

MQTT_SECRET_ENV = "TINYACT_MQTT_SECRET"
MQTT_USERNAME_ENV = "TINYACT_MQTT_USERNAME"
MQTT_PASSWORD_ENV = "TINYACT_MQTT_PASSWORD"
CLOUD_ACCOUNT = "tinyact-cloud"
PASSWORD_PREFIX = "tmq_"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
SALT_BYTES = 12

ACL_TEMPLATE = """\
# Written by `tinyact cloud broker-config`: rewrite it (and send mosquitto SIGHUP) after adding or
# revoking a device. A client may only do what a line below allows; anonymous clients are refused.

# Devices (username = device name): publish only their own clips, read only their own results and refusals.
pattern write {own_clips}
pattern read {own_results}
pattern read {own_errors}

# The cloud service: reads every device's clips and is the only account that writes results and errors.
user {cloud}
topic read {all_clips}
topic write {all_results}
topic write {all_errors}
"""

CONF_TEMPLATE = """\
# Written by `tinyact cloud broker-config` for {n} device(s) and the cloud account {cloud!r}.
# Run: mosquitto -c {conf}
# After `tinyact cloud device add/revoke`: run broker-config again, then `kill -HUP <mosquitto pid>`.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {passwd}
acl_file {acl}
persistence true
persistence_location {data}/
{user}"""


@overload
def mqtt_secret(required: Literal[True] = True) -> str: ...


@overload
def mqtt_secret(required: bool) -> str | None: ...


def mqtt_secret(required: bool = True) -> str | None:
    """The cloud's MQTT secret from ``$TINYACT_MQTT_SECRET``; :class:`ConfigError` if required and unset or short."""
    value = os.environ.get(MQTT_SECRET_ENV, "").strip()
    if not value:
        if not required:
            return None
        raise ConfigError(f"${MQTT_SECRET_ENV} is not set: export a long random string (e.g. `python -c "
                          "'import secrets; print(secrets.token_urlsafe(32))'`) and keep it with the cloud's secrets")
    if len(value) < 16:
        raise ConfigError(f"${MQTT_SECRET_ENV} is too short ({len(value)} characters): use at least 16 random characters")
    return value


def derive_password(secret: str, account: str, role: Literal["device", "cloud"] = "device") -> str:
    """The broker password of ``account``: ``tmq_`` + base64url(HMAC-SHA256(secret, "tinyact-mqtt/<role>/<account>"))."""
    digest = hmac.new(secret.encode(), f"tinyact-mqtt/{role}/{account}".encode(), hashlib.sha256).digest()
    return PASSWORD_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A ``passwd`` entry's hash in Mosquitto 2's format: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def cloud_credentials(username: str | None = None) -> tuple[str | None, str | None]:
    """The service's broker login: ``username`` (config) or ``$TINYACT_MQTT_USERNAME`` or ``tinyact-cloud``;
    the password from ``$TINYACT_MQTT_PASSWORD``, else derived from ``$TINYACT_MQTT_SECRET``. ``(None, None)``
    when neither is set (an anonymous broker)."""
    username = username or os.environ.get(MQTT_USERNAME_ENV, "").strip() or None
    password = os.environ.get(MQTT_PASSWORD_ENV, "").strip() or None
    if password is None:
        secret = mqtt_secret(required=False)
        if secret is not None:
            password = derive_password(secret, username or CLOUD_ACCOUNT, "cloud")
    if password is None:
        return username, None
    return username or CLOUD_ACCOUNT, password


@dataclass(frozen=True)
class BrokerFiles:
    """What :func:`write_broker_config` wrote."""

    conf: Path
    passwd: Path
    acl: Path
    devices: tuple[str, ...]
    cloud_account: str


def write_broker_config(out: Path, devices: list[str], secret: str, *, cloud_account: str = CLOUD_ACCOUNT,
                        listen: str = "127.0.0.1:1883", run_as: str | None = None) -> BrokerFiles:
    """Write ``mosquitto.conf``, ``passwd`` (0600) and ``acl`` under ``out`` for ``devices`` plus the cloud
    account. ``listen`` is ``HOST:PORT`` (``0.0.0.0:1883`` for every interface); ``run_as`` is Mosquitto's
    ``user`` (the account it switches to when started as root; default ``mosquitto``), which must be able to
    read ``passwd`` and write ``data/``."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {listen!r} must be HOST:PORT, e.g. 127.0.0.1:1883")
    for name in [*devices, cloud_account]:
        if not re.fullmatch(DEVICE_ID_PATTERN, name):  # also keeps + # / out of %u
            raise ConfigError(f"{name!r} cannot be an MQTT account: use letters, digits, _ . : -")
    if cloud_account in devices:
        raise ConfigError(f"a device is named {cloud_account!r}, the cloud's MQTT account: pick another --cloud-account")
    out = Path(out).expanduser().resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    lines = [f"{cloud_account}:{mosquitto_hash(derive_password(secret, cloud_account, 'cloud'))}"]
    lines += [f"{name}:{mosquitto_hash(derive_password(secret, name))}" for name in devices]
    passwd = out / "passwd"
    passwd.touch(mode=0o600)
    passwd.chmod(0o600)
    passwd.write_text("\n".join(lines) + "\n")
    acl = out / "acl"
    acl.write_text(ACL_TEMPLATE.format(
        cloud=cloud_account,
        own_clips=mqtt_clip_topic("%u", "+"), own_results=mqtt_result_topic("%u", "+"), own_errors=mqtt_error_topic("%u", "+"),
        all_clips=mqtt_clip_topic("+", "+"), all_results=mqtt_result_topic("+", "+"), all_errors=mqtt_error_topic("+", "+"),
    ))
    conf = out / "mosquitto.conf"
    conf.write_text(CONF_TEMPLATE.format(n=len(devices), cloud=cloud_account, conf=conf, port=port, host=host,
                                         passwd=passwd, acl=acl, data=out / "data",
                                         user=f"user {run_as}\n" if run_as else ""))
    return BrokerFiles(conf, passwd, acl, tuple(devices), cloud_account)
