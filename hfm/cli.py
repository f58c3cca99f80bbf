"""The ``hfm`` command: parses arguments, calls the library, prints. No logic lives here.

User mistakes (:class:`hfm.errors.HfmError`) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import sys

import click

from hfm import __version__
from hfm.errors import BackboneNotFoundError, HfmError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfm")
def cli() -> None:
    """Fine-tune health foundation models from the Hugging Face Hub with few labels."""


# ---- backbones -------------------------------------------------------------------------------------------
@cli.group()
def backbones() -> None:
    """List, inspect and download catalog backbones."""


@backbones.command("list")
@click.option("--modality", help="Only this modality (pathology, radiology, ophthalmology, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def backbones_list(modality: str | None, as_json: bool) -> None:
    """The catalog: name, modality, architecture, parameters, embedding size, license, gated."""
    import json

    from hfm.backbones.catalog import list_specs, modalities
    from hfm.backbones.info import format_table, spec_summary

    if modality is not None and modality not in modalities():
        raise click.BadParameter(
            f"{modality!r} is not one of {', '.join(modalities())}", param_hint="--modality"
        )
    rows = [spec_summary(spec) for spec in list_specs(modality)]
    click.echo(json.dumps(rows, indent=2) if as_json else format_table(rows))


@backbones.command("show")
@click.argument("name")
def backbones_show(name: str) -> None:
    """The full spec of one entry, including loader kwargs and the source of its facts."""
    from hfm.backbones.info import format_spec
    from hfm.backbones.names import resolve_name

    spec = resolve_name(name)[0]
    if spec is None:
        raise BackboneNotFoundError(f"{name!r} is not a catalog entry: see `hfm backbones list`")
    click.echo(format_spec(spec))


@backbones.command("download")
@click.argument("name")
@click.option("--revision", help="Branch, tag or commit (default: the entry's pinned revision, else main).")
@click.option("--trust-remote-code", is_flag=True, help="Also fetch the repository's code (*.py).")
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="If the revision has no safetensors, fetch its pickled weights (pytorch_model.bin ...); load them "
    "with allow_pickle=True, which reads them with torch.load(weights_only=True).",
)
def backbones_download(name: str, revision: str | None, trust_remote_code: bool, allow_pickle: bool) -> None:
    """Fetch a backbone into the Hugging Face cache (to prepare an offline machine); prints the commit."""
    from hfm.backbones.info import download_backbone

    snapshot = download_backbone(
        name, revision=revision, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
    click.echo(f"{name}: commit {snapshot.commit or 'unknown'} in {snapshot.path}")


@backbones.command("verify")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the disagreements as JSON.")
def backbones_verify(name: str, as_json: bool) -> None:
    """Compare a downloaded model's Hub configs with its catalog entry; exit 1 on an unexplained disagreement."""
    import json

    from hfm.backbones.verify import format_report, verify_backbone

    spec, commit, found = verify_backbone(name)
    if as_json:
        click.echo(
            json.dumps({"name": spec.name, "commit": commit, "disagreements": [d.to_dict() for d in found]})
        )
    else:
        click.echo(format_report(spec, commit, found))
    if any(not d.explained for d in found):
        raise click.exceptions.Exit(1)


@backbones.command("twin")
@click.argument("name")
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="A Hub-layout cache folder."
)
def backbones_twin(name: str, out: str) -> None:
    """Write the tiny random-weight twin of a catalog entry in Hugging Face Hub cache layout."""
    from pathlib import Path

    from hfm.backbones.names import resolve_name
    from hfm.backbones.twins import write_twin

    spec = resolve_name(name)[0]
    if spec is None:
        raise BackboneNotFoundError(
            f"twins exist only for catalog entries, not {name!r}: see `hfm backbones list`"
        )
    click.echo(str(write_twin(spec, Path(out))))


# ---- recipes and runs ------------------------------------------------------------------------------------
def _int_list(text: str | None, option: str, allow_all: bool = False) -> list[int | str] | None:
    """Parse ``1,4,all`` into ``[1, 4, "all"]`` (a bad item is a one-line error naming the option)."""
    if text is None:
        return None
    items: list[int | str] = []
    for raw in text.split(","):
        item = raw.strip()
        if allow_all and item == "all":
            items.append("all")
        elif item.lstrip("-").isdigit():
            items.append(int(item))
        else:
            allowed = "integers or 'all'" if allow_all else "integers"
            raise click.BadParameter(f"{item!r} is not one of {allowed} (e.g. 1,4,16)", param_hint=option)
    return items


@cli.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", type=click.Path(file_okay=False), help="Sweep folder (default: the recipe's output).")
@click.option("--shots", help="Labelled examples per class, comma-separated, e.g. 1,4,all.")
@click.option("--seeds", help="Seeds, comma-separated, e.g. 0,1,2.")
@click.option("--preset", "presets", multiple=True, help="Only this preset (repeatable), e.g. lora/r8-attn.")
@click.option("--twin", is_flag=True, help="Use the backbone's tiny random twin (offline smoke run).")
@click.option("--resume", is_flag=True, help="Skip runs that already finished in the sweep folder.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option(
    "--labelled",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="Labels CSV (id,label) from an `hfm select` round: train on exactly these instead of a random draw.",
)
@click.option(
    "--parallel",
    type=click.Choice(["auto", "runs", "data"]),
    default="auto",
    show_default=True,
    help="Under torchrun: each process trains whole runs (runs) or all train each run together (data).",
)
@click.option(
    "--runs-per-device",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes per device, each training its own runs.",
)
def run_command(
    recipe: str,
    out: str | None,
    shots: str | None,
    seeds: str | None,
    presets: tuple[str, ...],
    twin: bool,
    resume: bool,
    no_progress: bool,
    labelled: str | None,
    parallel: str,
    runs_per_device: int,
) -> None:
    """Run a recipe: every (preset, k, seed), then the summary table and the label-efficiency plot."""
    from hfm.runner import run

    result = run(
        recipe,
        out=out,
        shots=_int_list(shots, "--shots", allow_all=True),  # type: ignore[arg-type]
        seeds=_int_list(seeds, "--seeds"),  # type: ignore[arg-type]
        presets=list(presets) or None,
        twin=True if twin else None,
        resume=resume,
        progress=not no_progress,
        labelled=labelled,
        parallel=parallel,
        runs_per_device=runs_per_device,
    )
    if result.failed:
        raise click.ClickException(
            f"{len(result.failed)} run(s) failed; tracebacks in {result.out_dir / 'failures'}"
        )


@cli.command("select")
@click.argument("source", type=click.Path(dir_okay=False, path_type=str))
@click.option("--budget", required=True, type=int, help="How many images to choose for labelling.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=str), help="Selection folder."
)
@click.option("--backbone", help="Backbone whose embeddings the strategy reads (default: the recipe's).")
@click.option("--strategy", default="typiclust", show_default=True, help="typiclust, probcover, kcenter, "
              "random; after a first round also margin, entropy, badge.")  # fmt: skip
@click.option("--labelled", type=click.Path(dir_okay=False, path_type=str), help="Labels so far (id,label).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the strategy.")
@click.option("--twin", is_flag=True, help="Use the backbone's tiny random twin (offline smoke run).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def select_command(
    source: str, budget: int, out: str, backbone: str | None, strategy: str, labelled: str | None, seed: int,
    twin: bool, no_progress: bool,
) -> None:  # fmt: skip
    """Choose BUDGET images of SOURCE's train split (a recipe) to label next: to_label.csv + a contact sheet."""
    from hfm.labelling import select_from_recipe

    selection = select_from_recipe(
        source, budget=budget, out=out, backbone=backbone, strategy=strategy, labelled=labelled, seed=seed,
        twin=twin, progress=not no_progress,
    )  # fmt: skip
    for note in selection.notes:
        click.echo(f"hfm: note: {note}", err=True)
    click.echo(f"round {selection.round}: {len(selection.ids)} image(s) to label in {selection.files[0]}")


@cli.command("federate")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", help="Study folder (default: the recipe's output, else runs/<name>).")
@click.option("--shots", help="k per class at each site, comma-separated, e.g. 1,4.")
@click.option("--seeds", help="Seeds, comma-separated, e.g. 0,1,2.")
@click.option("--twin", is_flag=True, help="Use the backbone's tiny random twin (offline smoke run).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def federate_command(
    recipe: str, out: str | None, shots: str | None, seeds: str | None, twin: bool, no_progress: bool
) -> None:
    """Federated few-shot adaptation on Flower: sites train one adapter together, sharing only its weights."""
    from hfm.federated import require_flwr

    require_flwr()
    from hfm.federated.study import run as federate

    federate(
        recipe,
        out=out,
        shots=_int_list(shots, "--shots"),  # type: ignore[arg-type]
        seeds=_int_list(seeds, "--seeds"),  # type: ignore[arg-type]
        twin=True if twin else None,
        progress=not no_progress,
    )


@cli.command("validate")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--data",
    "load",
    is_flag=True,
    help="Also load the data, make every draw and load the backbone (cache or twin): all `hfm run` checks "
    "before its first run.",
)
def validate_command(recipes: tuple[str, ...], load: bool) -> None:
    """Check recipes without running them: schema, presets, data source block, backbone name."""
    from hfm.recipes import check

    problems = 0
    for path in recipes:
        try:
            line = check(path)
            if load:
                from hfm.runner import preflight

                preflight(path)
        except HfmError as err:
            problems += 1
            click.echo(f"FAIL {err}")
        else:
            click.echo(f"ok   {path}: {line}")
    if problems:  # the exit status `hfm run` gives the same mistakes
        click.echo(f"hfm: error: {problems} of {len(recipes)} recipe(s) invalid", err=True)
        raise click.exceptions.Exit(2)


@cli.command("predict")
@click.argument("adapter")
@click.argument(
    "images", nargs=-1, required=False, type=click.Path(exists=True, dir_okay=False, path_type=str)
)
@click.option(
    "--bag", help="Predict bags with a MIL adapter: a folder of images (one bag) or a bag_id,path CSV."
)
@click.option("--max-instances", default=4096, show_default=True, type=click.IntRange(min=1),
              help="With --bag: read at most this many images of a bag (a larger bag is sampled, and said).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--revision", help="For a Hub adapter: branch, tag or commit of the adapter repo.")
@click.option("--trust-remote-code", is_flag=True, help="Allow the base model's Hub code to run.")
@click.option("--allow-pickle", is_flag=True, help="Allow the base model's pickled weights (weights_only).")
def predict_command(
    adapter: str,
    images: tuple[str, ...],
    bag: str | None,
    max_instances: int,
    as_json: bool,
    batch_size: int,
    revision: str | None,
    trust_remote_code: bool,
    allow_pickle: bool,
) -> None:
    """Classify images with an adapter (a folder or a Hub repo id): class and probabilities per image.

    With --bag, classify bags with a MIL adapter: class, probabilities and the most-attended images per bag.
    """
    import json

    from hfm.inference import predict_files

    if bag is not None or not images:
        if bag is None or images:
            raise click.UsageError("give image files, or --bag DIR_OR_CSV (not both)")
        from hfm.mil.predict import predict_bag_files

        bag_rows = predict_bag_files(
            adapter, bag, max_instances=max_instances, batch_size=batch_size, revision=revision,
            trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
        )  # fmt: skip
        for row in bag_rows:
            if row["sampled"]:
                click.echo(
                    f"hfm: bag {row['bag']} has {row['instances']} images; read a sample of {row['read']}",
                    err=True,
                )
            probs = "  ".join(f"{name}={p:.3f}" for name, p in row["probabilities"].items())
            click.echo(json.dumps(row) if as_json else f"{row['bag']}\t{row['predicted']}\t{probs}")
        return

    rows = predict_files(
        adapter,
        list(images),
        batch_size=batch_size,
        revision=revision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )
    for row in rows:
        if as_json:
            click.echo(json.dumps(row))
        else:
            probabilities = row["probabilities"]
            assert isinstance(probabilities, dict)
            probs = "  ".join(f"{name}={p:.3f}" for name, p in probabilities.items())
            click.echo(f"{row['image']}\t{row['predicted']}\t{probs}")


# ---- hub: cards, push, pull ------------------------------------------------------------------------------
_SHOTS_HELP = "For a sweep folder: the k to publish (default: the largest)."


@cli.command("card")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--repo", "repo_id", help="Hub repo the card describes (for its usage snippets), ORG/NAME.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=str), help="Write README.md here.")
@click.option("--license", "license_id", help="License id instead of the base model's.")
@click.option("--preset", help="For a sweep folder: the preset to publish (default: the best at that k).")
@click.option("--k", "k", help=_SHOTS_HELP)
@click.option("--seed", type=int, help="For a sweep folder: the seed of the adapter (default: the lowest).")
def card_command(
    folder: str, repo_id: str | None, out: str | None, license_id: str | None, preset: str | None,
    k: str | None, seed: int | None,
) -> None:  # fmt: skip
    """Render the model card of an adapter, run or sweep FOLDER without publishing."""
    from pathlib import Path

    from hfm.hub.cards import render_card

    text = str(render_card(folder, repo_id=repo_id, license=license_id, preset=preset, k=k, seed=seed))
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@cli.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--repo", "repo_id", help="Target repository, ORG/NAME (default: the recipe's hub.repo_id).")
@click.option(
    "--public/--private",
    default=None,
    help="Visibility of a new repository (default: the recipe's, else private).",
)
@click.option("--revision", help="Branch to commit to (default: main; created when missing).")
@click.option("--dry-run", is_flag=True, help="List the files and sizes to upload; send nothing.")
@click.option("--license-ack", is_flag=True, help="Publish although the base license restricts derivatives.")
@click.option("--license", "license_id", help="License id for the card instead of the base model's.")
@click.option("--preset", help="For a sweep folder: the preset to publish.")
@click.option("--k", "k", help=_SHOTS_HELP)
@click.option("--seed", type=int, help="For a sweep folder: the seed whose adapter is published.")
def push_command(
    folder: str, repo_id: str | None, public: bool | None, revision: str | None, dry_run: bool, license_ack: bool,
    license_id: str | None, preset: str | None, k: str | None, seed: int | None,
) -> None:  # fmt: skip
    """Publish an adapter, run or sweep FOLDER to the Hub in one commit, with its model card."""
    from hfm.hub.push import push

    result = push(
        folder, repo_id, public=public, revision=revision, dry_run=dry_run, license_ack=license_ack,
        license=license_id, preset=preset, k=k, seed=seed,
    )  # fmt: skip
    for path, size in result.files:
        click.echo(f"{size:>12,d}  {path}")
    redacted = sum(result.redactions.values())
    note = f"; {redacted} local path(s) redacted" if redacted else ""
    visibility = "private" if result.private else "public"
    click.echo(f"{len(result.files)} files, {result.total_bytes:,d} bytes{note}")
    if result.dry_run:
        click.echo(f"dry run: nothing sent to {result.repo_id} ({visibility}, branch {result.revision})")
    else:
        created = f"created {visibility} repository, " if result.created else ""
        click.echo(f"pushed to {result.repo_id}: {created}commit {result.commit} on {result.revision}")


@cli.command("pretrain")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--out", type=click.Path(file_okay=False), help="Backbone folder (default: the recipe's output)."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last epoch checkpoint.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def pretrain_command(recipe: str, out: str | None, resume: bool, no_progress: bool) -> None:
    """Self-supervised (continued) pretraining of a backbone on unlabelled images; writes a backbone folder."""
    import os

    from hfm.pretrain import pretrain

    result = pretrain(recipe, out=out, resume=resume, progress=False if no_progress else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only the main process reports
    if result.stopped:
        click.echo(f"stopped early: {result.stopped}")
    kept = f"epoch {result.best_epoch}" if result.best_epoch else "the starting weights"
    click.echo(
        f"pretrained on {result.images} images for {result.epochs} epoch(s) in {result.seconds:.0f} s; kept "
        f"{kept}; load it with hfm.load_backbone('local-dir:{result.output}')"
    )


@cli.command("pull")
@click.argument("repo_id")
@click.option("--revision", help="Branch, tag or commit (default: main).")
def pull_command(repo_id: str, revision: str | None) -> None:
    """Download the adapter in REPO_ID (ORG/NAME) and print its local folder."""
    from hfm.hub.pull import pull

    click.echo(str(pull(repo_id, revision=revision)))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn user errors into one line on stderr."""
    try:
        code = cli.main(args=argv, prog_name="hfm", standalone_mode=False)
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
    return code if isinstance(code, int) else 0  # a command's click.exceptions.Exit(n)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
