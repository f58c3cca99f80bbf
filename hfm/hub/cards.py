"""Model cards for adapters: metadata and text rendered from ``model_cards/adapter.md``.

The YAML header is built by huggingface_hub's :class:`~huggingface_hub.ModelCardData` (``model-index`` from
:class:`~huggingface_hub.EvalResult`), never by string concatenation; the body is a Jinja2 template.
"""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hfm.errors import HubError
from hfm.hub.folders import Publication, inspect_folder, split_metrics
from hfm.hub.licenses import card_license, policy_for
from hfm.hub.safety import redact_paths

# ``hfm/_data/model_cards`` links to the top-level ``model_cards/`` in a checkout and is a copy in a wheel.
TEMPLATE = Path(__file__).resolve().parents[1] / "_data" / "model_cards" / "adapter.md"
DEFAULT_INTENDED_USE = (
    "Research use only: studying few-shot adaptation of health foundation models. Not a medical device; "
    "not for diagnosis, treatment or any clinical decision."
)
DEFAULT_OUT_OF_SCOPE = (
    "clinical use, diagnosis or triage of patients; use on data unlike the evaluation data without a new "
    "evaluation; any use the base model's license forbids."
)
PEFT_TUNERS = ("lora", "dora")
_LIBRARIES = ("torch", "timm", "transformers", "peft", "open_clip_torch", "huggingface_hub")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _metric_names(pub: Publication) -> list[str]:
    from hfm.metrics import METRICS

    wanted = pub.recipe.get("metrics") or list(METRICS)
    present = {m for r in pub.runs for m in split_metrics(r.metrics)}
    return [m for m in wanted if m in present]


def _summary(pub: Publication, metrics: list[str]) -> dict[str, Any]:
    """The sweep summary (:func:`hfm.report.summarize_runs`) of the runs behind the card."""
    from hfm.report import summarize_runs

    runs = [
        {
            "preset": r.preset,
            "tuner": r.metrics.get("tuner"),
            "method": r.metrics.get("method", "supervised"),
            "k": r.k,
            "seed": r.seed,
            "n_train": r.metrics.get("n_train"),
            "test": split_metrics(r.metrics),
        }
        for r in pub.runs
    ]
    # Presets in the recipe's order, as the sweep's own summary lists them.
    order = [p.get("name") if isinstance(p, dict) else p for p in pub.recipe.get("presets") or []]
    runs.sort(key=lambda r: order.index(r["preset"]) if r["preset"] in order else len(order))
    primary = _primary(pub, metrics)
    return summarize_runs(runs, metrics, primary) if primary else {"rows": [], "metrics": metrics}


def _primary(pub: Publication, metrics: Sequence[str]) -> str | None:
    wanted = str(pub.recipe.get("primary_metric") or "balanced_accuracy")
    return wanted if wanted in metrics else (metrics[0] if metrics else None)


def _summary_table(summary: dict[str, Any]) -> str:
    from hfm.report import to_markdown

    if not summary["rows"]:
        return "No evaluation was recorded with this adapter."
    return to_markdown(summary).rstrip("\n")


def _per_class_recall(pub: Publication) -> list[tuple[str, str]]:
    runs = [r for r in pub.runs if r.preset == pub.preset and str(r.k) == str(pub.k)]
    totals: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for name, value in (split_metrics(run.metrics).get("per_class_recall") or {}).items():
            if isinstance(value, (int, float)):
                totals[str(name)].append(float(value))
    return [(name, _fmt(sum(v) / len(v))) for name, v in totals.items()]


def _data_block(pub: Publication) -> dict[str, str]:
    data = pub.config.get("data") or {}
    source = dict(data.get("source") or pub.recipe.get("data") or {})
    kind = str(source.get("type", "unknown"))
    ref = (
        source.get("id")
        or source.get("name")
        or source.get("path")
        or source.get("root")
        or source.get("csv")
    )
    name = Path(str(ref)).name if ref and kind != "hf" else str(ref or kind)
    if kind == "hf" and source.get("id"):
        description = f"Hub dataset [{source['id']}](https://huggingface.co/datasets/{source['id']})"
    else:
        description = f"`{name}` ({kind} source)" if name != kind else f"hfm's `{kind}` source"
    return {
        "kind": kind,
        "name": name,
        "hub_id": str(source["id"]) if kind == "hf" and source.get("id") else "",
        "description": description,
        "fingerprint": str(data.get("fingerprint") or "not recorded"),
        "groups": _groups_statement(data, source),
        "bags": _bags_statement(data, source),
    }


def _bags_statement(data: dict[str, Any], source: dict[str, Any]) -> str:
    """The bag protocol of a ``unit: bag`` run (empty for image runs), from what the run recorded."""
    if data.get("unit") != "bag":
        return ""
    bags = data.get("bags") or {}
    group = data.get("group_key") or source.get("group_key") or source.get("group_column") or "group"
    counts = "; ".join(
        f"{split} {bags[split]['bags']} bags ({bags[split]['instances']} instances)"
        for split in ("train", "val", "test")
        if isinstance(bags.get(split), dict)
    )
    labels = "a bag-label table" if bags.get("bag_labels") == "table" else "the label its instances share"
    return (
        f"each `{group}` is a bag whose label is {labels}; k counts bags per class, drawn whole; the aggregator "
        "trains on cached instance embeddings with instances sampled per bag, and is evaluated on every "
        f"instance of each test bag; metrics and predictions are per bag. {counts}."
    )


def _groups_statement(data: dict[str, Any], source: dict[str, Any]) -> str:
    """What the split did with groups, from what the run recorded (the data source names its groups)."""
    info = data.get("split_info") or {}
    name = data.get("group_key") or source.get("group_key") or source.get("group_column")
    if not name and not info.get("group_aware"):
        return (
            "no: the data source gave no groups (patient, slide, study), so one patient's images may fall in "
            "both training and test."
        )
    group = f"`{name}`" if name else "group"
    if info.get("made_by") == "hfm":
        made = " and ".join(info.get("made") or ["validation/test"])
        how = f"hfm made the {made} split(s) whole {group} at a time, and "
    else:
        how = "the source's own splits were kept, and "
    return f"yes, by {group}: {how}no {group} of the validation or test split appears in training."


def _method(pub: Publication) -> dict[str, Any]:
    """The method the adapter was trained with, as the run recorded it (adapters before methods: supervised)."""
    recorded = pub.config.get("method")
    method = dict(recorded) if isinstance(recorded, dict) else {}
    return {
        "name": str(method.get("name") or "supervised"),
        "params": method.get("params") or {},
        "n_unlabelled": int(method.get("n_unlabelled") or 0),
        "pool": method.get("pool") or {},
    }


def _queries(pub: Publication) -> list[dict[str, Any]]:
    """The active-learning query rounds that chose the adapter's labels (round, strategy, n); empty for a draw."""
    recorded = pub.config.get("queries")
    return [dict(q) for q in recorded if isinstance(q, dict)] if isinstance(recorded, list) else []


def _federation(pub: Publication) -> str:
    """One line on how a federated adapter was trained (sites with their counts, rounds, strategy); '' if not."""
    fed = pub.config.get("federation")
    if not isinstance(fed, dict):
        return ""
    sites = fed.get("sites") or []
    counts = "; ".join(
        f"{s.get('site', f'site-{i + 1}')}: "
        + ", ".join(f"{key} {s[key]}" for key in ("train", "labelled", "test") if key in s)
        for i, s in enumerate(sites)
    )
    strategy = str(fed.get("strategy", "fedavg"))
    mu = f" (proximal mu {fed['proximal_mu']})" if strategy == "fedprox" else ""
    if fed.get("personal_head"):
        mu += " with per-site heads (this head is their average; each site kept its own)"
    return (
        f"yes: {len(sites)} sites trained this adapter with Flower, {fed.get('rounds')} rounds of `{strategy}`{mu}; "
        f"only adapter weights left the sites. Sites (examples): {counts or 'not recorded'}."
    )


def _code_value(value: Any) -> str:
    """A loader keyword's value as Python source: dotted layer paths (``timm.layers.SwiGLUPacked``) as names."""
    if (
        isinstance(value, str)
        and value.startswith(("timm.", "torch."))
        and value.replace(".", "").isidentifier()
    ):
        return value
    return repr(value)


def _pool_code(spec: dict[str, Any]) -> str:
    """The source line that pools ``tokens`` into the embedding the head reads, as the spec says."""
    n_prefix = int(spec.get("num_prefix_tokens") or 0)
    pooling = spec.get("pooling") or "cls"
    if pooling == "mean" and spec.get("fc_norm"):
        return (
            f"features = torch.nn.functional.layer_norm(tokens[:, {n_prefix}:].mean(dim=1), "
            f"({spec.get('embed_dim')},), eps=1e-6)  # MAE-style: pre-norm patch mean, fresh fc_norm"
        )
    if pooling == "mean":
        return f"features = tokens[:, {n_prefix}:].mean(dim=1)  # mean of the patch tokens"
    if pooling == "cls+mean":
        return f"features = torch.cat([tokens[:, 0], tokens[:, {n_prefix}:].mean(dim=1)], dim=-1)"
    return "features = tokens[:, 0]  # the class token"


def _usage_plain(pub: Publication, repo_id: str) -> str:
    """The card's "without hfm" snippet: base model, peft adapter and head, pooled as hfm pools (tested by
    running it against twins)."""
    spec = pub.spec
    if pub.tuner not in PEFT_TUNERS:
        return ""
    rev = pub.config.get("backbone", {}).get("resolved_revision") or spec.get("revision")
    n_classes = len(pub.config.get("classes") or [])
    timm = spec.get("loader") == "timm"
    if timm:
        # num_classes=0 is written once below (a headless backbone); a spec that repeats it must not repeat it.
        loader_kwargs = {k: v for k, v in (spec.get("loader_kwargs") or {}).items() if k != "num_classes"}
        kwargs = "".join(f", {k}={_code_value(v)}" for k, v in loader_kwargs.items())
        imports = ["import timm"]
        name = f"hf-hub:{spec.get('hub_id')}" + (f"@{rev}" if rev else "")  # timm reads a revision after '@'
        base = [f'base = timm.create_model("{name}", pretrained=True, num_classes=0{kwargs})']
        if spec.get("fc_norm"):  # MAE-style pooling reads the tokens before the final norm
            base.append("base.norm = torch.nn.Identity()")
        tokens = "tokens = model.forward_features(images)"
    else:
        imports = ["from transformers import AutoModel"]
        base = [f'base = AutoModel.from_pretrained("{spec.get("hub_id")}", revision="{rev}")']
        tokens = "tokens = model(pixel_values=images).last_hidden_state"
    if spec.get("pooling") == "pooler" and not timm:
        pooled = ["features = model(pixel_values=images).pooler_output"]
    else:
        pooled = [tokens, _pool_code(spec)]
    lines = [
        *imports,
        "from huggingface_hub import snapshot_download",
        "from peft import PeftModel",
        "from safetensors.torch import load_file",
        "import torch",
        "",
        f'folder = snapshot_download("{repo_id}")',
        *base,
        "model = PeftModel.from_pretrained(base, folder).eval()",
        f"head = torch.nn.Linear({spec.get('embed_dim')}, {n_classes})",
        'head.load_state_dict(load_file(f"{folder}/head.safetensors"))',
        *pooled,
        "logits = head(features)",
    ]
    return "\n".join(lines)


def _versions(pub: Publication) -> dict[str, Any]:
    packages = pub.environment.get("packages") or {}
    libs: list[tuple[str, str]] = []
    for name in _LIBRARIES:
        version = packages.get(name)
        if version is None and not packages:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                version = None
        if version:
            libs.append((name, str(version)))
    return {"hfm": pub.config.get("hfm_version", "unknown"), "libraries": libs}


def card_parts(
    pub: Publication,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    intended_use: str | None = None,
    license_ack: bool = False,
) -> tuple[ModelCardData, dict[str, Any]]:
    """The card metadata and the template variables for a publication."""
    spec = pub.spec
    hub_id = str(spec.get("hub_id") or "unknown/unknown")
    backbone = pub.config.get("backbone") or {}
    revision = backbone.get("resolved_revision") or spec.get("revision") or "not pinned"
    base_license = str(spec.get("license") or "unknown")
    policy = policy_for(base_license, gated=bool(spec.get("gated")))
    repo_id = repo_id or f"your-org/{Path(pub.root).name}"
    modality = str(spec.get("modality") or "general")
    metrics = _metric_names(pub)
    summary = _summary(pub, metrics)
    published: dict[str, Any] = next(
        (r for r in summary["rows"] if r["preset"] == pub.preset and str(r["k"]) == str(pub.k)), {}
    )
    data = _data_block(pub)
    seeds = pub.seeds or sorted({r.seed for r in pub.runs}) or [int(pub.config.get("seed", 0))]
    published_seed = pub.config.get("seed", seeds[0])
    model_name = repo_id.split("/")[-1]

    eval_results = []
    for metric in metrics:
        stats = published.get(metric) or {"mean": None}
        if stats["mean"] is None:
            continue
        eval_results.append(
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=data["hub_id"] or data["name"],
                dataset_name=data["name"],
                dataset_split="test",
                metric_type=metric,
                metric_name=f"{metric} (k={pub.k}, mean of {stats['n']} seeds)",
                metric_value=round(float(stats["mean"]), 4),
                metric_args={"k": pub.k, "seeds": stats["n"], "std": round(float(stats["std"] or 0.0), 4)},
            )
        )
    tags = ["hfm", "medical", modality, pub.tuner, "few-shot", "image-classification"]
    lic = card_license(base_license, license, str(spec.get("source") or f"https://huggingface.co/{hub_id}"))
    card_data = ModelCardData(
        base_model=hub_id,
        base_model_relation="adapter",
        library_name="peft" if pub.tuner in PEFT_TUNERS else "hfm",
        pipeline_tag="image-classification",
        license=lic["license"],
        license_name=lic.get("license_name"),
        license_link=lic.get("license_link"),
        tags=list(dict.fromkeys(tags)),
        datasets=[data["hub_id"]] if data["hub_id"] else None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )

    recipe_text = (
        yaml.safe_dump(pub.recipe, sort_keys=False).strip() if pub.recipe else "# recipe not recorded"
    )
    recipe_text = redact_paths(recipe_text)[0]  # the card shows no local paths, even before a push
    recipe_name = pub.config.get("recipe_name") or pub.recipe.get("name") or ""
    episode_files = [p for p in pub.extra_files if p.endswith("episode.json")]
    k_text = {"all": "all-label", "0": "zero-shot"}.get(str(pub.k), f"{pub.k}-shot")
    # "an 8-shot", "an 11-shot", "an 18-shot", "an all-label" (said aloud, these start with a vowel sound).
    article = "An" if k_text[0] in "a8" or str(pub.k) in ("11", "18") else "A"
    variables: dict[str, Any] = {
        "title": f"{model_name}: {pub.tuner} adapter on {hub_id}",
        "summary": (
            f"{article} {k_text} `{pub.tuner}` adapter (preset `{pub.preset}`) for {modality} image classification into "
            f"{len(pub.config.get('classes') or [])} classes, on top of [{hub_id}](https://huggingface.co/{hub_id}). "
            "Trained and evaluated with hfm under a few-shot protocol; reload it with "
            "`hfm.load_adapter`."
        ),
        "intended_use": intended_use or DEFAULT_INTENDED_USE,
        "out_of_scope": DEFAULT_OUT_OF_SCOPE,
        "base": {
            "hub_id": hub_id,
            "revision": revision,
            "license": base_license,
            "gated": bool(spec.get("gated")),
            "loader": spec.get("loader", "unknown"),
            "architecture": spec.get("architecture", "unknown"),
            "input_size": spec.get("input_size", 224),
            "pooling": spec.get("pooling", "cls"),
            "modality": modality,
            "twin": bool(backbone.get("twin")),
            "citation": spec.get("citation") or f"See the model card of {hub_id}.",
            "source": spec.get("source") or "",
        },
        "non_commercial": policy.non_commercial,
        "license_restricted": policy.needs_ack,
        "license_ack": license_ack,
        "data": data,
        "classes": [str(c) for c in pub.config.get("classes") or []],
        "k": pub.k,
        "seeds": seeds,
        "published_seed": published_seed,
        "episode_files": episode_files,
        "summary_table": _summary_table(summary),
        "plot": "label_efficiency.png" if pub.plot else "",
        "per_class_recall": _per_class_recall(pub),
        "repo_id": repo_id,
        "tuner": pub.tuner,
        "method": _method(pub),
        "text_head": pub.config.get("text_head") or {},
        "queries": _queries(pub),
        "federation": _federation(pub),
        "usage_plain": _usage_plain(pub, repo_id),
        "versions": _versions(pub),
        "command": f"hfm run recipe.yaml  # recipe {recipe_name}" if recipe_name else "hfm run recipe.yaml",
        "recipe_name": recipe_name,
        "recipe_yaml": recipe_text,
    }
    return card_data, variables


def render_card(
    folder: str | Path | Publication,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    intended_use: str | None = None,
    template: str | Path | None = None,
    preset: str | None = None,
    k: int | str | None = None,
    seed: int | None = None,
    license_ack: bool = False,
) -> ModelCard:
    """Render the model card of an adapter, run or sweep folder, without publishing anything.

    Args:
        folder: The folder (or an already inspected :class:`Publication`).
        repo_id: The Hub repo the card describes (used in the usage snippets).
        license: A license id that overrides the one inherited from the base model.
        intended_use: The publisher's own intended-use statement (default: research use, not a medical device).
        template: Another Jinja2 template (default ``model_cards/adapter.md``).
        preset: For a sweep, the preset to publish. k: its shots per class. seed: the seed of the adapter.
        license_ack: The publisher confirmed a restrictive base license allows sharing (stated in the card).

    Returns:
        The card; ``str(card)`` is the README.md text.
    """
    pub = folder if isinstance(folder, Publication) else inspect_folder(folder, preset=preset, k=k, seed=seed)
    path = Path(template) if template else TEMPLATE
    if not path.is_file():
        raise HubError(f"card template {path} not found; pass template= or reinstall hfm from its repository")
    card_data, variables = card_parts(
        pub, repo_id=repo_id, license=license, intended_use=intended_use, license_ack=license_ack
    )
    card = ModelCard.from_template(card_data, template_path=str(path), **variables)
    return ModelCard(str(card))  # re-parse: fails here, not on the Hub, if the header is not valid YAML
