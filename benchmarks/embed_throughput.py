"""Embedding throughput: ``hfm.embeddings.extract`` against the bare loop a user would write.

The backbone is a real architecture with random weights (timm ViT-S/16 at 112 px, no download) written as a
local model folder and loaded with ``hfm.load_backbone("local-dir:...")``. Candidates, timed in interleaved
rounds after a warm-up:

* ``bare``: ``torch.inference_mode()`` and ``model(x[i:i + bs])`` over tensors already decoded, resized and
  normalised in memory (the timm model itself, ``num_classes=0``: the pooled class token).
* ``hfm_tensors``: ``extract(backbone, TensorDataset(x))`` on the same tensors (DataLoader, batching, the
  Backbone wrapper, copying out): target >= 0.95 of ``bare``.
* ``hfm_files_w<W>``: the full hfm path from PNG files: ``load_data({"type": "folder", ...})`` once, then
  ``extract`` of its train, val and test splits with ``W`` DataLoader workers decoding and preprocessing
  (as the runner does): target >= 0.85 of ``bare``. ``load_data`` itself (it decodes every file once to
  screen out corrupt ones) is timed separately and reported, not counted: it runs once per sweep.

Same batch size, threads and precision (fp32) everywhere; the cache is off so every call extracts.

Command: ``python benchmarks/embed_throughput.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def write_pngs(root: Path, n: int, size: int, n_classes: int = 2, seed: int = 0) -> None:
    """``n`` PNG images (smooth structure plus noise, so they compress like real images) in class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        smooth = np.asarray(
            Image.fromarray(low).resize((size, size), Image.Resampling.BILINEAR), dtype=np.int16
        )
        noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        folder = root / f"class{i % n_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(folder / f"img{i:05d}.png")


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=None, help="number of images (default 256; quick 16)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default 64; quick 8)"
    )
    p.add_argument(
        "--workers", type=int, nargs="+", default=None, help="DataLoader workers to try (default 0 2)"
    )
    p.add_argument(
        "--png-size", type=int, default=128, help="side of the PNG files (resized by the transform)"
    )
    args = _common.parse_args(p, argv)
    threads = _common.setup_threads(args.threads)
    n = args.images or (16 if args.quick else 256)
    bs = args.batch_size or (8 if args.quick else 64)
    reps = args.reps or (1 if args.quick else 5)
    workers = args.workers if args.workers is not None else ([0, 1] if args.quick else [0, 2])
    start = time.perf_counter()

    import torch
    from torch.utils.data import TensorDataset

    from hfm.data import load_data
    from hfm.embeddings import extract

    with tempfile.TemporaryDirectory(prefix="hfm-bench-embed-") as tmp:
        root = Path(tmp) / "images"
        png_size = 40 if args.quick else args.png_size
        write_pngs(root, n, png_size)
        backbone = _common.vit_backbone(quick=args.quick, folder=Path(tmp) / "model")
        model = backbone.model  # the timm module a user would call directly

        t0 = time.perf_counter()
        splits = load_data({"type": "folder", "root": str(root)})
        load_data_s = time.perf_counter() - t0
        parts = [splits.train, splits.val, splits.test]
        assert sum(len(s) for s in parts) == n
        # Tensors already decoded: exactly what hfm's transform makes of every image, stacked in memory.
        x = torch.stack([backbone.transform(s.image(i)) for s in parts for i in range(len(s))])
        tensors = TensorDataset(x)

        def bare() -> torch.Tensor:
            with torch.inference_mode():
                return torch.cat([model(x[i : i + bs]) for i in range(0, n, bs)])

        def hfm_tensors() -> torch.Tensor:
            return extract(backbone, tensors, batch_size=bs, cache=False, progress=False, device="cpu")

        def hfm_files(w: int) -> Any:
            def run() -> list[torch.Tensor]:
                return [
                    extract(
                        backbone, s, batch_size=bs, num_workers=w, cache=False, progress=False, device="cpu"
                    )
                    for s in parts
                ]

            return run

        reference = bare()
        assert torch.allclose(hfm_tensors(), reference, atol=1e-4), "hfm embeddings differ from the bare loop"
        assert torch.allclose(torch.cat(hfm_files(0)()), reference, atol=1e-4), "file path differs"

        candidates = {"bare": bare, "hfm_tensors": hfm_tensors}
        candidates.update({f"hfm_files_w{w}": hfm_files(w) for w in workers})
        times = _common.interleaved(candidates, reps=reps, warmup=args.warmup)

    rows = []
    ratios: dict[str, float] = {}
    for name, values in times.items():
        ratio = 1.0 if name == "bare" else _common.paired_ratio(times["bare"], values)
        ratios[name] = ratio
        med = _common.median(values)
        rows.append({"candidate": name, "median_s": med, "images_per_s": n / med, "ratio_vs_bare": ratio})
    print(f"{n} images, batch {bs}, {threads} threads, fp32, {backbone.spec.architecture} at "
          f"{backbone.spec.input_size} px, {reps} interleaved rounds")  # fmt: skip
    print(_common.fmt_table(rows))
    print(f"load_data (screens every file once, once per sweep): {load_data_s:.3f} s")
    _common.print_ratio(
        "hfm_tensors / bare (throughput)", ratios["hfm_tensors"], ">= 0.95", ratios["hfm_tensors"] >= 0.95
    )
    best = max((k for k in ratios if k.startswith("hfm_files")), key=lambda k: ratios[k])
    _common.print_ratio(f"{best} / bare (throughput)", ratios[best], ">= 0.85", ratios[best] >= 0.85)
    payload = {
        "machine": _common.machine_info(threads),
        "setup": {
            "architecture": backbone.spec.architecture,
            "img_size": backbone.spec.input_size,
            "png_size": png_size,
            "images": n,
            "batch_size": bs,
            "precision": "fp32",
            "reps": reps,
        },
        "load_data_s": load_data_s,
        "results": rows,
        "times_s": times,
        "ratio_tensors": ratios["hfm_tensors"],
        "ratio_files_best": ratios[best],
        "best_files_candidate": best,
        "wall_s": time.perf_counter() - start,
    }
    _common.write_result("embed_throughput", payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
