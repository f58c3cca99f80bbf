"""The pretrained backbone's model card (README.md) and its monitor plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOT_NAME = "pretrain_monitor.png"


def plot_history(
    history: list[dict[str, Any]], checks: list[dict[str, Any]], path: Path, *, objective: str = "dino"
) -> None:
    """Loss per epoch, and the monitor's k-NN score and spread, side by side."""
    # A bare Figure draws off-screen without touching pyplot's backend (a notebook keeps its inline plots).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["loss"] for h in history], marker="o")
    left.set(xlabel="epoch", ylabel=f"{objective.upper()} loss", title="objective")
    if checks:
        x = [c["epoch"] for c in checks]
        right.plot(x, [c["knn"] for c in checks], marker="o", label="k-NN balanced accuracy (train, LOO)")
        right.plot(x, [c["spread"] for c in checks], marker="s", label="embedding spread")
        right.axhline(checks[0]["knn"], color="grey", linestyle=":", label="start")
        right.legend(fontsize=7)
    right.set(xlabel="epoch", title="monitor (train split only)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(facts: dict[str, Any]) -> str:
    """The card: base model and relation, objective, what adapted, images and fingerprint, schedule, monitor."""
    start = facts["start"]
    base = start.get("hub_id") if start.get("name") else None
    recipe = facts["recipe"]
    objective = recipe["objective"]["name"]
    front = [
        "---",
        "library_name: " + facts["library"],
        "tags:",
        "- hfm",
        "- self-supervised",
        f"- {objective}",
    ]
    if base and not start.get("twin") and "/" in str(base) and not str(base).startswith(("local-dir:", "/")):
        front += [f"base_model: {base}", "base_model_relation: finetune"]
    front.append("---")
    checks = facts.get("monitor", [])
    rows = (
        "\n".join(f"| {c['epoch']} | {c['knn']:.3f} | {c['spread']:.3f} |" for c in checks) or "| - | - | - |"
    )
    views = (
        f"{recipe['views']['local_crops']} local + 2 global views"
        if objective == "dino"
        else f"{recipe['objective']['mask_ratio']:.0%} of the patches masked, one cropped view"
    )
    lines = [
        *front,
        "",
        f"# {recipe['name']}: a backbone from `hfm pretrain`",
        "",
        recipe.get("description")
        or "Self-supervised (continued) pretraining of a backbone on unlabelled images.",
        "",
        "Not for diagnostic use: a research artifact whose quality depends on the images it saw.",
        "",
        "## Load",
        "",
        "```python",
        "import hfm",
        'backbone = hfm.load_backbone("local-dir:PATH")  # or the Hub id it was pushed to',
        "```",
        "",
        "## How it was made",
        "",
        f"- **Start**: {start['label']} (revision {start.get('revision') or 'n/a'}); "
        f"{'continued pretraining' if start.get('name') else 'random initialisation'}.",
        f"- **Objective**: {objective} (lightly), {views}; the exported network is the {facts['exported']}"
        + (" (the decoder is dropped)." if objective == "mae" else "."),
        f"- **What adapted**: {facts['adapted']}.",
        f"- **Images**: {facts['images']} train images of `{facts['data_label']}` "
        f"(fingerprint `{facts['data_fingerprint'][:16]}`); val and test were never read.",
        f"- **Schedule**: {facts['epochs_done']} of {recipe['schedule']['epochs']} epochs, batch "
        f"{recipe['schedule']['batch_size']} x {facts['processes']} process(es), lr {recipe['schedule']['lr']}, "
        f"seed {recipe['schedule']['seed']}, {facts['seconds']:.0f} s on {facts['device']}.",
        f"- **Kept**: epoch {facts['best_epoch']} ({facts['kept_because']}).",
    ]
    if facts.get("stopped"):
        lines.append(f"- **Stopped early**: {facts['stopped']}")
    lines += [
        "",
        "## Monitor (train split, leave-one-out k-NN; never val or test)",
        "",
        "| epoch | k-NN balanced accuracy | spread |",
        "|---|---|---|",
        rows,
        "",
        f"![monitor]({PLOT_NAME})",
        "",
        f"hfm {facts['hfm_version']}; recipe fingerprint `{facts['recipe_fingerprint']}`.",
        "",
    ]
    return "\n".join(lines)
