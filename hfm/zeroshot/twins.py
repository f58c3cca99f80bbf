"""Twins of text towers: a tiny random text model and a tokenizer written locally, in the real model's layout.

For an open_clip entry whose text tower is a Hugging Face model (BiomedCLIP: BiomedBERT), the twin writes a Hub
layout snapshot of that text repo (``config.json`` of a tiny BERT, a WordPiece vocabulary built here with
``tokenizers`` and saved by ``BertTokenizerFast``) next to the image twin in the twin cache, and the CLIP twin's
``open_clip_config.json`` names it in ``text_cfg`` exactly as the real config does. The loader then resolves
both repos and builds the tower with open_clip, as for the real model. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

# A tiny BERT: enough to tell prompts apart, small enough for CI.
TEXT_TWIN_BERT: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}
TEXT_TWIN_CONTEXT = 32
TEXT_TWIN_FORMAT = 3  # bump when a text twin's files change, so cached twins are rewritten
SIGLIP_TWIN_CONTEXT = 32
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words common in medical prompts; anything else falls back to single characters.
_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "with",
    "without",
    "and",
    "or",
    "in",
    "on",
    "this",
    "is",
    "photo",
    "image",
    "images",
    "scan",
    "showing",
    "shows",
    "breast",
    "ultrasound",
    "lesion",
    "mass",
    "tumor",
    "tumour",
    "benign",
    "malignant",
    "normal",
    "cancer",
    "cancerous",
    "healthy",
    "tissue",
    "cell",
    "cells",
    "blood",
    "chest",
    "x-ray",
    "xray",
    "ct",
    "mri",
    "pneumonia",
    "radiograph",
    "lung",
    "slide",
    "histology",
    "pathology",
    "retina",
    "fundus",
    "skin",
    "no",
    "sign",
    "signs",
]


def _vocab() -> list[str]:
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:-'()/")
    return [*_SPECIALS, *chars, *[f"##{c}" for c in chars], *_WORDS]


def _commit(repo: str, recipe: dict[str, Any]) -> str:
    text = json.dumps({"repo": repo, "format": TEXT_TWIN_FORMAT, **recipe}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def write_text_repo(repo: str, cache_dir: Path) -> Path:
    """Write (once) the Hub-layout snapshot of a tiny BERT text repo with a local WordPiece tokenizer."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = _vocab()
    recipe = {"bert": TEXT_TWIN_BERT, "vocab": vocab}
    root = cache_dir / ("models--" + repo.replace("/", "--"))
    commit = _commit(repo, recipe)
    snapshot = root / "snapshots" / commit
    if not (snapshot / ".hfm_twin_complete").is_file():
        root.joinpath("snapshots").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-text-twin-", dir=root))
        try:
            ids = {token: i for i, token in enumerate(vocab)}
            core = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100))
            core.normalizer = normalizers.BertNormalizer(lowercase=True)
            core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            core.post_processor = processors.BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))
            # transformers 5: BertTokenizer is tokenizers-backed; 4.x: BertTokenizerFast.
            bert = getattr(transformers, "BertTokenizerFast", transformers.BertTokenizer)
            fast = bert(tokenizer_object=core, do_lower_case=True)
            fast.model_max_length = TEXT_TWIN_CONTEXT
            fast.save_pretrained(str(tmp))
            (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")  # as BERT repos ship it
            config = transformers.BertConfig(vocab_size=len(vocab), pad_token_id=0, **TEXT_TWIN_BERT)
            config.save_pretrained(str(tmp))  # configs only: the CLIP checkpoint holds the text weights
            (tmp / ".hfm_twin_complete").write_text(f"twin of {repo}\n")
            if snapshot.exists():
                shutil.rmtree(snapshot)
            try:
                os.replace(tmp, snapshot)
            except OSError:
                if not (snapshot / ".hfm_twin_complete").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    refs = root / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(commit)
    return snapshot


def spread_text_weights(text: torch.nn.Module, std: float = 0.5) -> None:
    """Give a random text tower weights under which different words give different pooled states.

    With BERT's 0.02 init every prompt's CLS state is nearly the same, and with a uniformly large init the
    attention saturates on the CLS token itself; a trained model does neither. Queries and keys stay small
    (attention spreads over the prompt) and every other matrix gets ``std``, so the CLS state mixes the words.
    """
    with torch.no_grad():
        for name, param in text.named_parameters():
            if param.ndim >= 2 and not any(
                k in name for k in ("query", "key", "q_proj", "k_proj", "position")
            ):
                param.normal_(0.0, std)


def open_clip_text_twin(
    text_tower: dict[str, Any], cache_dir: Path, embed_dim: int
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The twin's ``text_cfg`` and its ``text.*`` + ``logit_scale`` tensors (open_clip's own text tower).

    Args:
        text_tower: The catalog entry's ``text_tower`` facts.
        cache_dir: The Hub-layout cache the CLIP twin is written to (the text repo goes beside it).
        embed_dim: The twin's projected embedding size.
    """
    from open_clip.model import _build_text_tower

    repo = text_tower.get("hf_model_name")
    text_cfg: dict[str, Any] = {"context_length": TEXT_TWIN_CONTEXT}
    if repo:
        folder = write_text_repo(str(repo), cache_dir)
        text_cfg.update(
            hf_model_name=str(repo),
            hf_tokenizer_name=str(repo),
            hf_proj_type=text_tower.get("hf_proj_type", "mlp"),
            hf_pooler_type=text_tower.get("hf_pooler_type", "cls_last_hidden_state_pooler"),
        )
        build_cfg = {**text_cfg, "hf_model_name": str(folder), "hf_model_pretrained": False}
    else:  # open_clip's own text transformer with its bundled BPE tokenizer
        text_cfg.update(vocab_size=49408, width=32, heads=2, layers=1)
        build_cfg = dict(text_cfg)
    text = _build_text_tower(embed_dim, build_cfg)
    spread_text_weights(text)
    prefix = "text." if repo else ""
    state = {f"{prefix}{k}": v.contiguous() for k, v in text.state_dict().items()}
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return text_cfg, state


def siglip_twin_model(vision: dict[str, Any], folder: Path) -> torch.nn.Module:
    """A tiny full ``SiglipModel`` (image and text towers) and its locally built tokenizer, written to ``folder``.

    The real MedSigLIP repository is a whole SigLIP checkpoint with its tokenizer; the image backbone loads its
    vision tower (``SiglipVisionModel``) and the text tower loads the whole model, so the twin has both too.
    The tokenizer is a WordPiece vocabulary built here (no SentencePiece model to download), appending ``</s>``
    as SigLIP's does; the caller saves the model.
    """
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = ["<pad>", "<unk>", "</s>", *[t for t in _vocab() if not t.startswith("[")]]
    ids = {token: i for i, token in enumerate(vocab)}
    core = Tokenizer(models.WordPiece(vocab=ids, unk_token="<unk>", max_input_chars_per_word=100))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", ids["</s>"])]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="</s>"
    )
    tokenizer.model_max_length = SIGLIP_TWIN_CONTEXT
    tokenizer.save_pretrained(str(folder))
    text = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": SIGLIP_TWIN_CONTEXT,
        "projection_size": int(vision.get("hidden_size", 64)),
        "pad_token_id": ids["<pad>"],
        "eos_token_id": ids["</s>"],
    }
    config = transformers.SiglipConfig(text_config=text, vision_config=vision)
    model = transformers.SiglipModel(config)
    with torch.no_grad():
        # SigLIP's own starting temperature and bias (Zhai et al. 2023): t' = log 10, b = -10.
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    spread_text_weights(model.text_model)
    return model
