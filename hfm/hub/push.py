"""Publish an adapter, run or sweep folder to the Hub as one commit with its model card.

The upload is built in a temporary staging folder (adapter files, ``README.md`` card, plot, metrics, episode
files, recipe), scanned there (local paths redacted; images, DICOM fields and the token refused) and sent as
a single commit. The user's folder is only read, never changed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from hfm import env
from hfm.adapter_check import verify_for_publishing
from hfm.errors import HubError, TunerError
from hfm.hub import _net
from hfm.hub.cards import render_card
from hfm.hub.folders import PLOT_NAME, Publication, inspect_folder
from hfm.hub.licenses import policy_for
from hfm.hub.safety import scan_stage

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class PushResult:
    """What a push did (or, for a dry run, would do).

    Attributes:
        repo_id: Target repository.
        revision: Target branch.
        private: Whether a newly created repository is private.
        files: ``(path_in_repo, size in bytes)`` of every uploaded file, sorted.
        commit_message: The commit title.
        redactions: Local paths redacted per file.
        dry_run: Nothing was sent.
        commit: The commit sha on the Hub (``None`` for a dry run).
        url: The commit (or repository) URL.
        created: Whether this push created the repository.
    """

    repo_id: str
    revision: str
    private: bool
    files: list[tuple[str, int]]
    commit_message: str
    redactions: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    commit: str | None = None
    url: str | None = None
    created: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def commit_message(pub: Publication) -> str:
    """A commit title that names the recipe, the preset, k and the seeds."""
    recipe = pub.config.get("recipe_name") or pub.recipe.get("name") or "no recipe"
    seeds = ",".join(str(s) for s in pub.seeds) or str(pub.config.get("seed", "?"))
    return f"hfm: {pub.tuner} adapter ({pub.preset}), recipe {recipe}, k={pub.k}, seeds {seeds}"


def _stage(pub: Publication, stage: Path, card_text: str) -> None:
    files = {**pub.adapter_files(), **pub.extra_files}
    if pub.plot is not None:
        files[PLOT_NAME] = pub.plot
    for rel, source in files.items():
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (stage / "README.md").write_text(card_text, encoding="utf-8")


def push(
    folder: str | Path,
    repo_id: str | None = None,
    *,
    public: bool | None = None,
    revision: str | None = None,
    dry_run: bool = False,
    license_ack: bool = False,
    license: str | None = None,
    intended_use: str | None = None,
    preset: str | None = None,
    k: int | str | None = None,
    seed: int | None = None,
    message: str | None = None,
    attempts: int = 5,
    backoff: float = 1.0,
) -> PushResult:
    """Publish ``folder`` (adapter, run, sweep or pretrained backbone) to ``repo_id`` in one commit, private unless
    ``public``.

    Args:
        folder: The local folder; only read.
        repo_id: ``org/name`` on the Hub (or on the mirror ``HF_ENDPOINT`` names); default: the recipe's
            ``hub.repo_id``.
        public: Create the repository public; default: the recipe's ``hub.private`` (else private). An
            existing repository keeps its visibility.
        revision: Branch to commit to (created from ``main`` when missing); default ``main``.
        dry_run: Stage and check everything, list the files, send nothing.
        license_ack: Publish although the base model's license restricts derivatives or redistribution.
        license: License id for the card instead of the base model's.
        intended_use: Your intended-use statement for the card.
        preset: For a sweep, the preset to publish. k: its shots per class. seed: the seed of the adapter.
        message: Commit title (default names recipe, preset, k and seeds).
        attempts: Tries for each request on transient errors (5xx, reset connections).
        backoff: First wait between tries, in seconds (doubling).

    Raises:
        HubError: A refused or failed push; the message says whether anything reached the Hub.
    """
    from hfm.hub.backbone_push import is_pretrained_backbone, push_backbone

    if is_pretrained_backbone(Path(folder)):
        if repo_id is None or not _REPO_ID.match(repo_id):
            raise HubError(f"{folder}: pass the target repository as ORG/NAME, e.g. --repo my-lab/busi-dino")
        return push_backbone(  # type: ignore[return-value]
            Path(folder), repo_id, public=bool(public), revision=revision, dry_run=dry_run,
            license_ack=license_ack, message=message, attempts=attempts, backoff=backoff,
        )  # fmt: skip
    pub = inspect_folder(folder, preset=preset, k=k, seed=seed)
    try:  # never publish what `hfm predict` would reject
        verify_for_publishing(pub.adapter_dir)
    except TunerError as err:
        raise HubError(f"not publishing {pub.adapter_dir}: {err}") from None
    target = pub.recipe.get("hub") or {}
    if repo_id is None:
        repo_id = target.get("repo_id")
        if not repo_id:
            raise HubError(
                f"{folder}: no target repository: pass --repo ORG/NAME or set hub.repo_id in the recipe"
            )
    if public is None:
        public = not bool(target.get("private", True))
    if not _REPO_ID.match(repo_id):
        raise HubError(f"repository id {repo_id!r} is not ORG/NAME; pass e.g. --repo my-lab/uni-lora-crc")
    spec = pub.spec
    policy = policy_for(spec.get("license"), gated=bool(spec.get("gated")))
    if policy.needs_ack and not license_ack:
        raise HubError(policy.refusal(str(spec.get("hub_id", "?"))))
    branch = revision or "main"
    token = _net.token()
    card = render_card(
        pub, repo_id=repo_id, license=license, intended_use=intended_use, license_ack=license_ack
    )
    with tempfile.TemporaryDirectory(prefix="hfm-push-") as tmp:
        stage = Path(tmp)
        _stage(pub, stage, str(card))
        return scan_and_send(
            stage,
            plot_names=(PLOT_NAME,) if pub.plot else (),
            repo_id=repo_id,
            revision=branch,
            public=public,
            message=message or commit_message(pub),
            token=token,
            dry_run=dry_run,
            attempts=attempts,
            backoff=backoff,
        )


def scan_and_send(
    stage: Path,
    *,
    plot_names: tuple[str, ...],
    repo_id: str,
    revision: str,
    public: bool,
    message: str,
    token: str | None,
    dry_run: bool,
    attempts: int,
    backoff: float,
) -> PushResult:
    """Scan a staged folder (paths redacted, stray images refused), then send it as one commit unless dry.

    Shared by adapter and backbone pushes: what is checked before anything leaves the machine is the same.
    """
    report = scan_stage(stage, token=token, plot_names=plot_names)
    staged = sorted(p for p in stage.rglob("*") if p.is_file())
    result = PushResult(
        repo_id=repo_id,
        revision=revision,
        private=not public,
        files=[(p.relative_to(stage).as_posix(), p.stat().st_size) for p in staged],
        commit_message=message,
        redactions=report.redactions,
        dry_run=dry_run,
    )
    if dry_run:
        return result
    if not token:
        raise HubError("no Hub token: run `hf auth login` or set HF_TOKEN, then push again")
    if env.offline():
        raise HubError(
            f"{env.offline_variable() or 'HF_HUB_OFFLINE'} is set, so nothing can be pushed: unset it (or pass "
            "--dry-run to check the push without the network)"
        )
    _send(result, stage, token, attempts=attempts, backoff=backoff)
    return result


def _send(result: PushResult, stage: Path, token: str, *, attempts: int, backoff: float) -> None:
    """Create the repo (and branch) if needed and send the single commit, retrying transient failures."""
    api = HfApi(endpoint=env.hub_endpoint(), token=token)
    repo_id, branch = result.repo_id, result.revision
    where = "nothing reached the Hub"
    try:
        try:
            _net.with_retries(
                lambda: api.create_repo(repo_id, private=result.private, exist_ok=False),
                attempts=attempts,
                backoff=backoff,
            )
            result.created = True
            where = f"the empty repository {repo_id} was created on the Hub but no files were committed"
        except HfHubHTTPError as err:
            if _net.status_of(err) != 409:
                raise
        if branch != "main":
            _net.with_retries(
                lambda: api.create_branch(repo_id, branch=branch, exist_ok=True),
                attempts=attempts,
                backoff=backoff,
            )
        head = _net.with_retries(
            lambda: api.repo_info(repo_id, revision=branch).sha, attempts=attempts, backoff=backoff
        )

        def landed() -> str | None:
            """After a failed try: did the commit land anyway (its answer lost)? Then do not commit twice."""
            try:
                now = api.repo_info(repo_id, revision=branch).sha
            except Exception:
                return None
            return now if now != head else None

        def commit() -> str:
            operations = [
                CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(stage / rel))
                for rel, _ in result.files
            ]
            info = api.create_commit(
                repo_id, operations, commit_message=result.commit_message, revision=branch, parent_commit=head
            )
            return str(info.oid)

        result.commit = _net.with_retries(commit, attempts=attempts, backoff=backoff, before_retry=landed)
        result.url = f"{api.endpoint}/{repo_id}/tree/{branch}"
    except HubError:
        raise
    except ValueError as err:  # huggingface_hub's own checks (e.g. card metadata refused by validate-yaml)
        raise HubError(
            f"push to {repo_id} refused: {_one_line(err)}; {where}; your local folder is unchanged"
        ) from err
    except Exception as err:
        hint = "check your token's write access" if _net.status_of(err) in (401, 403) else "try again later"
        raise HubError(
            f"push to {repo_id} failed ({_net.describe(err)}, {_one_line(err)}); {where}; "
            f"your local folder is unchanged; {hint}"
        ) from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")
