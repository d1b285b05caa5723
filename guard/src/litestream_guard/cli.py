"""litestream-guard: what stands between Litestream and its replica.

Litestream 0.5 restores what it is told to and replicates whatever file it
finds: it does not refuse a database that is BEHIND its replica (it logs
"detected database behind replica" and writes the old file over the newer
history), and `restore -if-replica-exists` cannot tell an empty replica path
from a damaged one. This helper closes both gaps, reading only what Litestream
itself reports (`status`, `ltx`, `restore`, the control socket).

Settings come from /etc/litestream/guard.json (written by Ansible;
LITESTREAM_GUARD_SETTINGS names another file); those of the host's other
databases from /etc/litestream/NAME/guard.json (--database NAME). Exit 0 lets Litestream start;
1: try again (the store is unreachable, a restore failed); 2: bad arguments;
3: refused, the operator decides (starting would roll the replica back or
mix two histories). systemd retries any start that does not exit 0.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys

from . import destinations, drill, lifecycle, metrics, pitr, settings, status
from .errors import EXIT_OK, EXIT_RETRY, EXIT_USAGE, Refused, StoreUnreachable
from .host import Host
from .output import warn

# Each command group owns its subcommands, their flags and usage.
GROUPS = (lifecycle, status, destinations, drill, pitr, metrics)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="litestream-guard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--database",
        metavar="NAME",
        help="one of the host's other databases (litestream_databases) by its name "
        "(default: the host's first database)",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return top


def main(argv: list[str]) -> int:
    """Run `argv` (argv[0] is the program's name); the exit code."""
    top = parser()
    try:
        opts = top.parse_args(argv[1:])
    except SystemExit as done:  # --help (0) or a usage error (2), already printed
        return EXIT_OK if done.code in (0, None) else EXIT_USAGE
    if not opts.command:
        warn(top.format_help())
        return EXIT_USAGE
    if getattr(opts, "whole_host", False) and opts.database is not None:
        warn(f"litestream-guard {opts.command} covers every database of the host: no --database")
        return EXIT_USAGE
    try:
        if getattr(opts, "whole_host", False):
            opts.run(None, opts)
            return EXIT_OK
        host = Host(settings.load(settings.path_of(opts.database)))
        with host.exclusive(opts.command):
            opts.run(host, opts)
    except Refused as error:
        warn(str(error))
        return error.code
    except StoreUnreachable as error:
        warn(f"The replica store cannot be read ({error}): try again later")
        return EXIT_RETRY
    except subprocess.TimeoutExpired as error:
        warn(f"{_command(error.cmd)} did not finish within {error.timeout:g} s: try again later")
        return EXIT_RETRY
    except subprocess.CalledProcessError as error:
        warn(f"{_command(error.cmd)} failed (exit {error.returncode})")
        return EXIT_RETRY
    except (OSError, sqlite3.Error) as error:
        warn(f"litestream-guard {opts.command}: {error}")
        return EXIT_RETRY
    return EXIT_OK


def _command(cmd: object) -> str:
    """`litestream restore`, `systemctl stop`: what ran, in two words."""
    if isinstance(cmd, list | tuple):
        return "`" + " ".join(str(part).rsplit("/", 1)[-1] for part in cmd[:2]) + "`"
    return f"`{cmd}`"


def run() -> None:
    sys.exit(main(sys.argv))
