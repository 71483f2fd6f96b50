"""The `zse` command line.

Subcommands live in their own modules under `zse.workflows` and are imported only when used, so
`zse --help` stays fast and a missing optional extra (dask-jobqueue, dask-cuda, MONAI) only matters for
the command that needs it. Errors derived from `zse.errors.ZseError` are printed as one line on stderr
with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from zse import __version__
from zse.errors import ZseError

# command name -> "module:attribute" of a click.Command. One line per command; each module owns its command.
COMMANDS: dict[str, str] = {
    "demo": "zse.workflows.demo:demo",
    "synth": "zse.workflows.synth:synth",
    "convert": "zse.workflows.convert:convert",
    "enhance": "zse.workflows.enhance:enhance_command",
    "info": "zse.workflows.info:info",
    "extract-rois": "zse.workflows.extract_rois:extract_rois",
    "train": "zse.workflows.train:train",
    "export": "zse.workflows.export:export",
    "evaluate": "zse.workflows.evaluate:evaluate_command",
    "bench": "zse.workflows.bench.command:bench",
    "submit": "zse.workflows.submit:submit",
    "models": "zse.workflows.info:models",
    "register": "zse.workflows.register:register_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        # No ImportError is caught: a command whose module does not import is a bug, shown with its traceback
        # (never "No such command"); optional extras are imported inside the commands that need them.
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zse")
def cli() -> None:
    """zse: whole-slide z-stack enhancement for brain histology (OME-Zarr in, OME-Zarr out)."""


# Operating-system errors a user fixes (space, quota, permissions, a read-only file system): one line, not a traceback.
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def os_error_line(exc: OSError) -> str | None:
    """The one line for an OSError the user can act on, or None (a bug: keep its traceback)."""
    if exc.errno not in USER_ERRNOS:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"{exc.strerror or exc}{where}; nothing was finished: fix it and run again "
            "(zse enhance --resume keeps the blocks already written)")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `zse` script: run the CLI, turning ZseError into one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="zse", standalone_mode=False)
    except ZseError as exc:
        click.echo(f"zse: error: {exc.message}", err=True)
        sys.exit(2)
    except OSError as exc:
        line = os_error_line(exc)
        if line is None:
            raise
        click.echo(f"zse: error: {line}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("zse: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
