"""The text tower of a vision-language backbone, loaded on request through the publisher's own library.

* **open_clip** (BiomedCLIP): the snapshot's ``open_clip_config.json`` ``text_cfg`` is built with open_clip's
  ``_build_text_tower`` and loaded from the same checkpoint as the image tower (``text.*`` tensors and
  ``logit_scale``). For a Hugging Face text model (``hf_model_name``/``hf_tokenizer_name``, BiomedBERT for
  BiomedCLIP) the named repository is resolved like the image snapshot (configs and tokenizer files only; the
  weights come from the CLIP checkpoint, exactly as ``open_clip.create_model_from_pretrained('hf-hub:...')``
  sets ``hf_model_pretrained=False`` when a checkpoint is given) and the tokenizer is open_clip's
  ``HFTokenizer``, the class ``open_clip.get_tokenizer('hf-hub:...')`` builds for such a config.
* **transformers** (MedSigLIP, CLIP): ``SiglipModel``/``CLIPModel`` and ``AutoTokenizer`` from the snapshot;
  SigLIP text is padded to ``max_length`` as it was trained.

Nothing here runs for image-only use: a backbone stays an image tower until a zero-shot run asks for text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from hfm.errors import BackboneLoadError, ConfigError, HfmError
from hfm.policy import LoadPolicy

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone

# A text model's config and tokenizer files (SentencePiece models included); never its weights.
TOKENIZER_PATTERNS = ("*.json", "*.txt", "*.model")
# transformers model types whose checkpoint holds a text tower next to the image tower.
TRANSFORMERS_TEXT_MODELS = {"siglip": "SiglipModel", "clip": "CLIPModel"}


class NoTextTowerError(HfmError, ValueError):
    """A backbone without a text tower was asked for zero-shot prediction."""


@dataclasses.dataclass
class TextTower:
    """A loaded text tower: prompts in, embeddings in the image embedding's space out.

    Attributes:
        library: ``open_clip`` or ``transformers``.
        module: The text model (kept for its parameters and device).
        tokenize: Prompts -> token ids ``[N, L]`` (padded/truncated to the context length).
        count: Prompt -> its number of tokens without truncation (special tokens included).
        embed: Token ids -> text embeddings ``[N, D]`` (not normalised).
        context_length: Longest prompt, in tokens, the tower reads.
        logit_scale: The learned temperature, already exponentiated (CLIP: ~100).
        logit_bias: SigLIP's learned bias (0 for CLIP).
    """

    library: str
    module: nn.Module
    tokenize: Callable[[list[str]], torch.Tensor]
    count: Callable[[str], int]
    embed: Callable[[torch.Tensor], torch.Tensor]
    context_length: int
    logit_scale: float
    logit_bias: float = 0.0

    def check_lengths(self, prompts: Sequence[str]) -> None:
        """Refuse a prompt the tokenizer would cut (one line naming it, its length and the context)."""
        for prompt in prompts:
            n = self.count(prompt)
            if n > self.context_length:
                raise ConfigError(
                    f"prompt {prompt!r} is {n} tokens, longer than the text tower's context of "
                    f"{self.context_length}: shorten it"
                )

    def encode(self, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Text embeddings ``[N, D]`` (float32, not normalised) of ``prompts``; lengths are checked first."""
        self.check_lengths(prompts)
        device = next(self.module.parameters()).device
        out = []
        self.module.eval()
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                ids = self.tokenize(list(prompts[start : start + batch_size])).to(device)
                out.append(self.embed(ids).float().cpu())
        return torch.cat(out)


def has_text_tower(name: str) -> bool | None:
    """Whether the catalog entry ``name`` has a text tower; ``None`` for names outside the catalog."""
    from hfm.backbones.catalog import find_spec

    try:
        spec = find_spec(name)
    except HfmError:
        return None
    return None if spec is None else bool(spec.text_tower)


def no_text_tower(name: str) -> NoTextTowerError:
    """The one-line error for a backbone without a text tower."""
    return NoTextTowerError(
        f"backbone {name} has no text tower: zero-shot (k = 0) and text-initialised heads need a "
        "vision-language backbone such as multimodal/biomedclip or multimodal/medsiglip"
    )


def load_text_tower(backbone: Backbone, policy: LoadPolicy = LoadPolicy()) -> TextTower:
    """The text tower of ``backbone`` from the snapshot its image tower came from.

    Raises:
        NoTextTowerError: The backbone's snapshot has no text tower.
        BackboneError: The text model or tokenizer cannot be found or built (one line).
    """
    folder = backbone.source_path
    name = backbone.spec.name
    if folder is None:
        raise no_text_tower(name)
    folder = Path(folder)
    if (folder / "open_clip_config.json").is_file():
        return _open_clip_text(folder, backbone, policy)
    if backbone.family == "transformers" and (folder / "config.json").is_file():
        if not backbone.is_twin and backbone.revision:
            # The image snapshot fetched configs and weights only: add the tokenizer files of the same commit
            # (SigLIP's is a SentencePiece ``*.model``).
            from hfm.hub.download import resolve_files

            folder = resolve_files(
                backbone.spec.hub_id, list(TOKENIZER_PATTERNS), revision=backbone.revision, name=name
            ).path
        return _transformers_text(folder, name, policy)
    raise no_text_tower(name)


# -- open_clip -------------------------------------------------------------------------------------------
def _resolve_repo(repo: str, backbone: Backbone) -> Path:
    """A Hugging Face repo named in ``text_cfg`` as a local folder: a path, or a snapshot of configs/tokenizer.

    A twin's text repo sits in the twin cache beside the twin; a real one is resolved in the Hugging Face cache
    (downloaded when online), configs and tokenizer files only.
    """
    from hfm.hub.download import resolve_files

    local = Path(repo).expanduser()
    if local.is_dir():
        return local
    source = Path(backbone.source_path or ".")
    cache = source.parents[2] if backbone.is_twin else None
    return resolve_files(
        repo, list(TOKENIZER_PATTERNS), cache_dir=cache, local_files_only=backbone.is_twin, name=repo
    ).path


def _open_clip_text(folder: Path, backbone: Backbone, policy: LoadPolicy) -> TextTower:
    from hfm.backbones.loaders.clip_loader import _open_clip_model, read_clip_config, read_open_clip_state

    _build_text_tower = _open_clip_model()._build_text_tower  # one-line error when open_clip is missing
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    label = backbone.spec.name
    model_cfg, _ = read_clip_config(folder)
    text_cfg = dict(model_cfg.get("text_cfg") or {})
    if not text_cfg:
        raise no_text_tower(label)
    context = int(text_cfg.get("context_length", 77))
    tokenizer: Any
    repo = text_cfg.get("hf_model_name")
    if repo:
        text_folder = _resolve_repo(str(repo), backbone)
        tok_name = text_cfg.get("hf_tokenizer_name") or repo
        tok_folder = text_folder if tok_name == repo else _resolve_repo(str(tok_name), backbone)
        # The checkpoint holds the text weights: build the HF model from its config only.
        text_cfg.update(hf_model_name=str(text_folder), hf_model_pretrained=False)
        tokenizer = HFTokenizer(
            str(tok_folder), context_length=context, **dict(text_cfg.get("tokenizer_kwargs") or {})
        )
        hf = tokenizer.tokenizer

        def count(prompt: str) -> int:
            return len(hf(tokenizer.clean_fn(prompt))["input_ids"])
    else:
        tokenizer = SimpleTokenizer(context_length=context)

        def count(prompt: str) -> int:
            return len(tokenizer.encode(prompt)) + 2  # start and end of text

    try:
        text = _build_text_tower(
            int(model_cfg["embed_dim"]), text_cfg, quick_gelu=bool(model_cfg.get("quick_gelu", False))
        )
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise BackboneLoadError(f"{label}: open_clip could not build the text tower: {err}") from err
    state = read_open_clip_state(folder, label, policy)
    prefix = "text." if any(k.startswith("text.") for k in state) else ""
    skip = ("visual.", "logit_scale", "logit_bias")
    text_state = {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and not k.startswith(skip)
    }
    missing, unexpected = text.load_state_dict(text_state, strict=False)
    # transformers registers position ids as buffers that some checkpoints omit.
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected or "logit_scale" not in state:
        raise BackboneLoadError(
            f"{label}: text-tower weights do not match open_clip_config.json (missing {missing[:3]}, "
            f"unexpected {list(unexpected)[:3]}, logit_scale {'present' if 'logit_scale' in state else 'absent'})"
        )
    text.to(backbone.device)
    bias = state.get("logit_bias")
    return TextTower(
        library="open_clip",
        module=text,
        tokenize=lambda prompts: tokenizer(prompts),
        count=count,
        embed=text,
        context_length=context,
        logit_scale=float(state["logit_scale"].float().exp()),
        logit_bias=float(bias) if bias is not None else 0.0,
    )


# -- transformers ----------------------------------------------------------------------------------------
def _transformers_text(folder: Path, label: str, policy: LoadPolicy) -> TextTower:
    import transformers

    from hfm.backbones.loaders.common import is_pickled, read_json, weight_files

    model_type = str(read_json(folder / "config.json").get("model_type"))
    if model_type not in TRANSFORMERS_TEXT_MODELS:
        raise no_text_tower(label)
    cls = getattr(transformers, TRANSFORMERS_TEXT_MODELS[model_type])
    pickled = is_pickled(weight_files(folder, label, allow_pickle=policy.allow_pickle))
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(str(folder), use_safetensors=not pickled, weights_only=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BackboneLoadError(
            f"{label}: transformers could not load the text tower or its tokenizer from {folder}: {first}"
        ) from err
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model.vision_model = None  # the image tower is the backbone's; keep one copy in memory
    context = int(model.config.text_config.max_position_embeddings)
    siglip = model_type == "siglip"

    def tokenize(prompts: list[str]) -> torch.Tensor:
        # SigLIP was trained on text padded to the full context (no attention mask); CLIP reads its EOS token.
        padding = "max_length" if siglip else True
        out = tokenizer(prompts, padding=padding, max_length=context, truncation=True, return_tensors="pt")
        return out["input_ids"]

    def embed(ids: torch.Tensor) -> torch.Tensor:
        mask = None if siglip else (ids != tokenizer.pad_token_id).long()
        out = model.get_text_features(input_ids=ids, attention_mask=mask)
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    bias = getattr(model, "logit_bias", None)
    return TextTower(
        library="transformers",
        module=model,
        tokenize=tokenize,
        count=lambda prompt: len(tokenizer(prompt)["input_ids"]),
        embed=embed,
        context_length=context,
        logit_scale=float(model.logit_scale.detach().float().exp()),
        logit_bias=float(bias.detach().float().reshape(-1)[0]) if bias is not None else 0.0,
    )


# -- the classifier built from prompts -------------------------------------------------------------------
@dataclasses.dataclass
class TextHead:
    """A zero-shot classifier: one unit-norm text embedding per class, the tower's logit scale and bias.

    ``logits = logit_scale * normalise(image_embedding) @ weight.T + logit_bias``.

    Attributes:
        weight: ``[C, D]`` class embeddings, each the renormalised mean of its L2-normalised prompt embeddings.
        logit_scale: The tower's temperature (exponentiated), applied once.
        logit_bias: SigLIP's bias (0 for CLIP).
        prompts: Class -> prompts, in class order.
        fingerprint: Hash of the classes and prompts.
    """

    weight: torch.Tensor
    logit_scale: float
    logit_bias: float
    prompts: dict[str, list[str]]
    fingerprint: str

    def logits(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits ``[N, C]`` of raw image embeddings."""
        x = F.normalize(image_embeddings.float(), dim=-1)
        return self.logit_scale * x @ self.weight.T.to(x.device) + self.logit_bias

    def to_dict(self) -> dict[str, Any]:
        """What runs, adapters and cards record."""
        return {
            "prompts": self.prompts,
            "fingerprint": self.fingerprint,
            "ensemble": "mean of the L2-normalised prompt embeddings, renormalised",
            "logit_scale": self.logit_scale,
            "logit_bias": self.logit_bias,
        }


def ensemble(embeddings: torch.Tensor) -> torch.Tensor:
    """One class embedding from its prompts' ``[P, D]`` embeddings: mean of the normalised rows, renormalised."""
    return F.normalize(F.normalize(embeddings.float(), dim=-1).mean(dim=0), dim=-1)


def build_text_head(tower: TextTower, prompts: dict[str, list[str]]) -> TextHead:
    """Encode every class's prompts once and ensemble them into a :class:`TextHead`."""
    from hfm.zeroshot.prompts import fingerprint

    every = [p for ps in prompts.values() for p in ps]
    emb = tower.encode(every)
    rows, start = [], 0
    for ps in prompts.values():
        rows.append(ensemble(emb[start : start + len(ps)]))
        start += len(ps)
    return TextHead(
        weight=torch.stack(rows),
        logit_scale=tower.logit_scale,
        logit_bias=tower.logit_bias,
        prompts={c: list(ps) for c, ps in prompts.items()},
        fingerprint=fingerprint(prompts),
    )


def sweep_text_head(backbone: Backbone, block: Any, classes: Sequence[str], policy: LoadPolicy) -> TextHead:
    """The text head of a sweep: the recipe's prompts per class through the backbone's text tower (built once).

    Raises:
        ConfigError: No prompts block, a class without prompts, a prompt longer than the context.
        NoTextTowerError: The backbone has no text tower.
    """
    from hfm.zeroshot.prompts import class_prompts

    if block is None:
        raise ConfigError("zero-shot and text-init presets need the recipe's prompts block")
    prompts = class_prompts(block, classes)  # a class without prompts fails before the tower loads
    tower = load_text_tower(backbone, policy)
    return build_text_head(tower, prompts)
