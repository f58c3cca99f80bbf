"""Multimodal (image-text) backbones: image towers, and text towers for zero-shot. Each entry cites its facts."""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SPECS: list[BackboneSpec] = [
    # Card + open_clip_config.json (huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224):
    # open_clip.create_model_from_pretrained('hf-hub:microsoft/BiomedCLIP-...'); vision_cfg timm_model_name
    # vit_base_patch16_224, timm_pool "" (trunk keeps its CLS pooling), timm_proj linear to embed_dim 512;
    # preprocess mean/std are the OpenAI CLIP values; 224 px. The only weights file is a pickled
    # open_clip_pytorch_model.bin. The image embedding is the tower output (pooler, 512-d); tokens come from the
    # timm trunk (768 wide, CLS first).
    BackboneSpec(
        name="multimodal/biomedclip",
        hub_id="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        loader="open_clip",
        architecture="vit_base_patch16_224",
        input_size=224,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        pooling="pooler",
        num_prefix_tokens=1,
        embed_dim=512,
        lora_targets=r".*trunk\.blocks\.\d+\.attn\.(qkv|proj)",
        modality="multimodal",
        license="mit",
        params_m=86.0,
        # Journal version (NEJM AI 2(1), 2025, doi:10.1056/AIoa2400640) of arXiv:2303.00915.
        citation="Zhang et al., A multimodal biomedical foundation model trained from fifteen million image-text "
        "pairs, NEJM AI 2025",
        source="https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        provenance={
            "mean": "open_clip_config.json preprocess_cfg: OpenAI CLIP mean/std",
            "interpolation": "open_clip image_transform default for eval: Resize(224, BICUBIC) + CenterCrop(224)",
            "pooling": "open_clip_config.json vision_cfg: timm_pool '', timm_proj linear -> 512-d image embedding",
            "weights": "huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224: pickled "
            "open_clip_pytorch_model.bin only",
        },
        description="CLIP ViT-B/16 image tower trained on 15M PubMed Central figure-caption pairs (PMC-15M).",
        # open_clip_config.json text_cfg: a PubMedBERT text model (hf_model_name and hf_tokenizer_name
        # microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract), CLS of the last hidden state, MLP projection to
        # 512, context 256.
        text_tower={
            "library": "open_clip",
            "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "hf_proj_type": "mlp",
            "context_length": 256,
        },
    ),
    # Card (huggingface.co/google/medsiglip-448): transformers SigLIP (AutoModel), 448 px, SigLIP
    # normalisation 0.5/0.5; image embedding = image tower pooler (attention-pooling head), 1152-d;
    # Health AI Developer Foundations terms, gated. ``architecture`` selects the vision tower only.
    BackboneSpec(
        name="multimodal/medsiglip",
        hub_id="google/medsiglip-448",
        loader="transformers",
        architecture="siglip_vision_model",
        input_size=448,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bilinear",
        resize_mode="squash",
        pooling="pooler",
        num_prefix_tokens=0,
        embed_dim=1152,
        lora_targets=("q_proj", "k_proj", "v_proj"),
        modality="multimodal",
        license="health-ai-developer-foundations",
        gated=True,
        params_m=400.0,
        citation="Sellergren et al., MedGemma technical report, arXiv:2507.05201, 2025",
        source="https://huggingface.co/google/medsiglip-448",
        provenance={
            "resize_mode": "SigLIP processor: size {height: 448, width: 448} (no aspect-preserving resize)",
            "interpolation": "SigLIP processor resample 2 (bilinear)",
        },
        description="SigLIP-400M image tower tuned on chest X-ray, CT, MRI, dermatology, ophthalmology and "
        "pathology image-text pairs.",
        # Card: AutoModel (SiglipModel) + AutoTokenizer, text padded to max_length 64.
        text_tower={"library": "transformers", "context_length": 64},
    ),
]
