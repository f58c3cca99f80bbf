"""GPU benchmark: ViT-B/16 at 224 px, random weights, on one H100/H200 in under 5 minutes.

Reports:

* embedding images/s in bf16 with PyTorch's fused attention (``F.scaled_dot_product_attention``, which timm
  ViTs call when ``timm.layers.use_fused_attn()``), for the hfm ``Backbone`` under bf16 autocast (hfm's
  precision "auto" on a GPU) and with the weights cast to bf16, on batches already on the GPU;
* the fraction of the GPU's dense bf16 peak this reaches: model FLOPs per image (counted by
  ``torch.utils.flop_counter.FlopCounterMode``, 2 FLOPs per multiply-add) x images/s / peak;
  target >= 40 %;
* ``hfm.embeddings.extract`` images/s from CPU tensors (DataLoader, pinned copies, autocast: the end-to-end
  library path);
* LoRA (hfm defaults, r=8) and full fine-tuning steps/s and peak GPU memory (bf16 autocast, AdamW).

Dense bf16 peaks (NVIDIA datasheets list the figure with 2:4 sparsity; dense is half): H100 SXM 989.4
TFLOPS (1,979 sparse), H100 PCIe 756 (1,513), H100 NVL 835 (1,671); H200 SXM 989.4 (1,979), H200 NVL 835
(1,671). Sources: NVIDIA H100 Tensor Core GPU datasheet; NVIDIA H200 Tensor Core GPU datasheet. Override
with ``--peak-tflops`` for another GPU.

Options: ``--compile`` wraps the bf16 model in ``torch.compile`` (mode ``max-autotune-no-cudagraphs``) and
reports it as a third embedding figure; ``--channels-last`` converts the input and model to channels-last
(only the patch-embedding convolution can use it, so expect no change). ``--dry-run`` runs every code path
on the CPU with a tiny twin in seconds (used by the smoke test): its figures mean nothing.

Command: ``bash benchmarks/gpu.sh`` (or ``python benchmarks/gpu.py``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

# (substring of torch.cuda.get_device_name, dense bf16 TFLOPS); first match wins, so specific names first.
PEAKS_BF16_DENSE: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0),
    ("H200", 989.4),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM5 parts report e.g. "NVIDIA H100 80GB HBM3"
)
NOMINAL_PEAK = 989.4  # used by --dry-run only
NUM_CLASSES = 10


def detect_peak(device_name: str) -> tuple[float | None, str]:
    """Dense bf16 peak TFLOPS for a known GPU name, and which entry matched."""
    for key, tflops in PEAKS_BF16_DENSE:
        if key.lower() in device_name.lower():
            return tflops, key
    return None, "unknown"


def flops_per_image(model: Any, size: int, device: Any, dtype: Any) -> float:
    """Forward FLOPs for one image (FlopCounterMode counts 2 per multiply-add, attention included)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 3, size, size, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return float(counter.get_total_flops())


def throughput(
    fn: Callable[[], Any], batch: int, *, seconds: float, warmup: int, sync: Callable[[], None]
) -> float:
    """Images/s of ``fn`` (one batch per call), run for about ``seconds`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 5 == 0 or seconds <= 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return calls * batch / elapsed


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--dry-run", action="store_true", help="tiny twin on the CPU: exercise every path in seconds"
    )
    p.add_argument("--arch", default="vit_base_patch16_224")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=256, help="embedding batch size")
    p.add_argument("--train-batch", type=int, default=64, help="fine-tuning batch size")
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure")
    p.add_argument(
        "--extract-images", type=int, default=4096, help="images for the hfm.embeddings.extract figure"
    )
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="dense bf16 peak of this GPU (overrides detection)"
    )
    p.add_argument("--compile", action="store_true", help="also measure torch.compile on the bf16 model")
    p.add_argument("--channels-last", action="store_true", help="channels-last input and model")
    args = _common.parse_args(p, argv)
    start = time.perf_counter()

    import torch

    dry = args.dry_run or args.quick
    if not dry and not torch.cuda.is_available():
        print(
            "gpu.py: no CUDA device; run on a GPU machine, or pass --dry-run to exercise the code on the CPU"
        )
        return 2
    threads = _common.setup_threads(args.threads)
    device = torch.device("cpu" if dry else "cuda")
    if dry:
        batch, train_batch, seconds, n_extract = 4, 2, 0.0, 8
        device_name = "cpu (dry run)"
        peak, peak_key = args.peak_tflops or NOMINAL_PEAK, "nominal (dry run)"
    else:
        batch, train_batch, seconds, n_extract = (
            args.batch,
            args.train_batch,
            args.seconds,
            args.extract_images,
        )
        device_name = torch.cuda.get_device_name(0)
        detected, peak_key = detect_peak(device_name)
        peak = args.peak_tflops or detected or 0.0
        if not peak:
            print(f"warning: unknown GPU {device_name!r}: pass --peak-tflops to get the fraction of peak")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    import timm

    print(f"device: {device_name}; dense bf16 peak {peak} TFLOPS ({peak_key})")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hfm-bench-gpu-") as tmp:
        folder = _common.vit_folder(Path(tmp) / "model", args.arch, args.img_size, quick=dry)
        embedding, flops, fused, size, extract_ips = embedding_figures(
            folder, device, batch, n_extract, seconds, dry, peak, sync, channels_last=args.channels_last,
            compile_model=args.compile,
        )  # fmt: skip
        print(
            f"{args.arch} at {size} px: {flops / 1e9:.2f} GFLOPs per image (forward); fused attention: {fused}"
        )
        results["embedding"] = embedding
        results["extract_images_per_s"] = extract_ips

        training: dict[str, dict[str, float]] = {}
        for tuner in ("lora", "full"):
            training[tuner] = train_figures(
                tuner, folder, device, train_batch, size, seconds, dry, flops, peak, sync
            )
            t = training[tuner]
            print(
                f"{tuner}: {t['steps_per_s']:.2f} steps/s ({t['images_per_s']:.0f} images/s), peak memory "
                f"{t['peak_memory_gib']:.2f} GiB, trainable {int(t['trainable'])} of {int(t['params'])} parameters"
            )
        results["training"] = training

    best = max(embedding.values(), key=lambda v: v["images_per_s"])
    label = "fraction of bf16 peak (embedding)" + (" [dry run: meaningless]" if dry else "")
    _common.print_ratio(label, best["fraction_of_peak"], ">= 0.40", best["fraction_of_peak"] >= 0.40)
    _common.print_ratio(
        "lora/full steps per second",
        training["lora"]["steps_per_s"] / training["full"]["steps_per_s"],
        ">= 1 (reported)",
        training["lora"]["steps_per_s"] >= training["full"]["steps_per_s"],
    )
    payload = {
        "machine": _common.machine_info(threads),
        "device": device_name,
        "dry_run": dry,
        "peak_bf16_dense_tflops": peak,
        "peak_source": peak_key,
        "fused_attention": fused,
        "torch_sdpa_flash_enabled": bool(torch.backends.cuda.flash_sdp_enabled()),
        "timm_use_fused_attn": bool(timm.layers.use_fused_attn()),
        "setup": {
            "architecture": args.arch,
            "img_size": size,
            "batch": batch,
            "train_batch": train_batch,
            "compile": args.compile,
            "channels_last": args.channels_last,
        },
        "flops_per_image": flops,
        **results,
        "fraction_of_peak_best": best["fraction_of_peak"],
        "wall_s": time.perf_counter() - start,
    }
    if not dry:
        payload["cuda"] = torch.version.cuda
    if dry and args.results_dir is None:
        return 0
    _common.write_result("gpu", payload, args)
    return 0


def embedding_figures(
    folder: Path,
    device: Any,
    batch: int,
    n_extract: int,
    seconds: float,
    dry: bool,
    peak: float,
    sync: Callable[[], None],
    *,
    channels_last: bool,
    compile_model: bool,
) -> tuple[dict[str, dict[str, float]], float, bool, int, float]:
    """Embedding images/s (autocast, bf16 weights, optionally compiled) and the hfm extract figure.

    Returns:
        ``(figures per variant, forward FLOPs per image, fused attention on, input size, extract images/s)``.
    """
    import torch
    from torch.utils.data import TensorDataset

    from hfm.backbones import load_backbone
    from hfm.embeddings import extract

    backbone = load_backbone(f"local-dir:{folder}").to(device).eval()
    size = int(backbone.spec.input_size)
    fused = bool(getattr(backbone.model.blocks[0].attn, "fused_attn", False))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    bf16_model = load_backbone(f"local-dir:{folder}").to(device=device, dtype=torch.bfloat16).eval()
    if channels_last:
        backbone.to(memory_format=memory_format)
        bf16_model.to(memory_format=memory_format)
    flops = flops_per_image(backbone, size, device, torch.float32)
    x32 = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    xbf = x32.to(torch.bfloat16)

    def autocast_forward() -> Any:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            return backbone(x32)

    def bf16_forward() -> Any:
        with torch.inference_mode():
            return bf16_model(xbf)

    variants: dict[str, Callable[[], Any]] = {"autocast_bf16": autocast_forward, "bf16_weights": bf16_forward}
    if compile_model:
        compiled = torch.compile(bf16_model, mode="max-autotune-no-cudagraphs")

        def compiled_forward() -> Any:
            with torch.inference_mode():
                return compiled(xbf)

        variants["compiled_bf16"] = compiled_forward
    figures: dict[str, dict[str, float]] = {}
    for name, fn in variants.items():
        ips = throughput(fn, batch, seconds=seconds, warmup=2 if dry else 10, sync=sync)
        frac = flops * ips / (peak * 1e12) if peak else float("nan")
        figures[name] = {"images_per_s": ips, "tflops": flops * ips / 1e12, "fraction_of_peak": frac}
        print(
            f"embedding {name}: {ips:.0f} images/s, {flops * ips / 1e12:.1f} TFLOPS, {100 * frac:.1f} % of peak"
        )

    # The library path end to end: CPU tensors -> DataLoader (pinned) -> GPU -> autocast -> CPU embeddings.
    cpu_images = TensorDataset(torch.randn(n_extract, 3, size, size))
    extract(backbone, cpu_images, batch_size=batch, cache=False, progress=False, device=device)  # warm-up
    sync()
    t0 = time.perf_counter()
    extract(backbone, cpu_images, batch_size=batch, cache=False, progress=False, device=device)
    sync()
    extract_ips = n_extract / (time.perf_counter() - t0)
    print(f"hfm.embeddings.extract from CPU tensors: {extract_ips:.0f} images/s")
    return figures, flops, fused, size, extract_ips


def train_figures(
    tuner: str,
    folder: Path,
    device: Any,
    batch: int,
    size: int,
    seconds: float,
    dry: bool,
    flops: float,
    peak: float,
    sync: Callable[[], None],
) -> dict[str, float]:
    """Steps/s and peak memory of one tuner: bf16 autocast forward, cross-entropy, backward, AdamW step."""
    import torch
    import torch.nn.functional as F

    from hfm.backbones import load_backbone
    from hfm.tuners import get_tuner

    model = get_tuner(tuner)(load_backbone(f"local-dir:{folder}"), NUM_CLASSES).to(device)
    model.train()
    params = list(model.trainable_parameters().values())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ips = throughput(step, batch, seconds=seconds, warmup=1 if dry else 5, sync=sync)
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    out = {
        "steps_per_s": ips / batch,
        "images_per_s": ips,
        "peak_memory_gib": peak_mem,
        "trainable": float(sum(p.numel() for p in params)),
        "params": float(sum(p.numel() for p in model.parameters())),
        # Training FLOPs ~ 3x forward (forward + backward through activations and weights); a rough MFU.
        "approx_fraction_of_peak": 3 * flops * ips / (peak * 1e12) if peak else float("nan"),
    }
    return out


if __name__ == "__main__":
    sys.exit(main())
