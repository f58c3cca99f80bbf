"""The ``hfm`` command: parses arguments, calls the library, prints. No logic lives here.

User mistakes (:class:`hfm.errors.HfmError`) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import sys

import click

from hfm import __version__
from hfm.errors import HfmError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfm")
def cli() -> None:
    """Fine-tune health foundation models from the Hugging Face Hub with few labels."""


# ---- backbones -------------------------------------------------------------------------------------------
@cli.group()
def backbones() -> None:
    """List, inspect and download catalog backbones."""


# ---- recipes and runs ------------------------------------------------------------------------------------


# ---- hub: cards, push, pull ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn user errors into one line on stderr."""
    try:
        cli.main(args=argv, prog_name="hfm", standalone_mode=False)
    except HfmError as err:
        click.echo(f"hfm: error: {err}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("hfm: aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except KeyboardInterrupt:
        click.echo("hfm: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
