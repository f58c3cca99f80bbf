"""Recipe checks for zero-shot and text-initialised presets, run before any run starts (one-line errors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hfm.errors import ConfigError

if TYPE_CHECKING:
    from hfm.recipes import Recipe


def label_free_presets(recipe: Recipe) -> set[str]:
    """Names of the recipe's presets whose method needs no label (they run at k = 0 only)."""
    from hfm.methods import get_method

    return {p.name for p in recipe.resolved_presets if not get_method(p.method.name).needs.labels}


def check_recipe(recipe: Recipe, source: str) -> None:
    """k = 0 needs a label-free preset and vice versa; text methods need prompts and a text tower.

    Raises:
        ConfigError: The first problem, in one line.
    """
    from hfm.methods import get_method
    from hfm.zeroshot.text import has_text_tower

    free = label_free_presets(recipe)
    labelled = [p.name for p in recipe.resolved_presets if p.name not in free]
    if 0 in recipe.shots and not free:
        raise ConfigError(
            f"{source}: shots: k = 0 runs only presets that need no label; add one (zero-shot/text) or remove 0"
        )
    if free and 0 not in recipe.shots:
        raise ConfigError(f"{source}: shots: preset(s) {sorted(free)} predict without labels: add 0 to shots")
    if labelled and not [k for k in recipe.shots if k != 0]:
        raise ConfigError(f"{source}: shots: preset(s) {labelled} need labels: add a k >= 1 to shots")
    texts = [p.name for p in recipe.resolved_presets if get_method(p.method.name).needs.text]
    if not texts:
        return
    if recipe.prompts is None:
        raise ConfigError(
            f"{source}: prompts: preset(s) {texts} build their head from class prompts: add a prompts block "
            "(templates, names, descriptions or file)"
        )
    if has_text_tower(recipe.backbone.name) is False:
        raise ConfigError(
            f"{source}: backbone.name: {recipe.backbone.name} has no text tower, which preset(s) {texts} need "
            "(k = 0 and text-init): use a vision-language backbone such as multimodal/biomedclip"
        )
