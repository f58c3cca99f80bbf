"""Pretraining throughput: ``hfm.pretrain`` against a hand-written DINO loop, same model, loss and batch.

Both sides train the same timm architecture from the same random initialisation with lightly's DINO head
and loss, lightly's multi-crop transform (2 global + 6 local views) on the same images, batch 32, AdamW, the
same EMA teacher update, fp32, one process, views made in the main process. The hand-written loop is what a
user writes from lightly's DINO example: index the images, make the views, stack, student and teacher
forward, loss, backward, step, momentum update. hfm's side is ``hfm.pretrain`` with the monitor off, timed
by its own training-loop clock (``PretrainResult.seconds``: views, steps, checkpoint); loading the data and
writing the backbone folder are reported separately. Rounds are interleaved (A B, B A, ...).

Command: ``python benchmarks/pretrain_throughput.py`` (a few minutes on 2 cores); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

ARCH = {"architecture": "resnet18", "kwargs": {"channels": [16, 32, 64, 128]}, "input_size": 32}
BATCH = 32
LOCAL_CROPS = 6


def recipe(images: int, quick: bool) -> dict[str, Any]:
    """The pretrain recipe both sides implement."""
    return {
        "name": "throughput",
        "backbone": ARCH if not quick else {**ARCH, "kwargs": {"channels": [8, 8, 8, 8]}},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": images // 2, "size": 48, "seed": 3},
        "views": {"local_crops": LOCAL_CROPS},
        "objective": {"out_dim": 1024, "hidden_dim": 256, "bottleneck_dim": 64, "batch_norm": True},
        "schedule": {"epochs": 1, "batch_size": BATCH, "lr": 1e-3, "warmup_epochs": 0, "progress": False},
        "monitor": {"enabled": False},
    }


def run_hfm(spec: dict[str, Any], out: Path) -> tuple[float, float, int]:
    """``(training-loop seconds, whole-call seconds, images)`` of one ``hfm.pretrain`` call."""
    import hfm

    start = time.perf_counter()
    result = hfm.pretrain(spec, out=out)
    return result.seconds, time.perf_counter() - start, result.steps * BATCH


def make_hand(spec: dict[str, Any]) -> Any:
    """The hand-written loop over the same images, model, head, loss, views and optimiser."""
    import copy

    import timm
    import torch
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import update_momentum
    from lightly.transforms.dino_transform import DINOTransform
    from PIL import Image

    from hfm.data import load_data

    train = load_data(spec["data"]).train
    obj, size = spec["objective"], spec["backbone"]["input_size"]

    def step_all() -> tuple[float, int]:
        torch.manual_seed(0)
        model = timm.create_model(
            spec["backbone"]["architecture"], num_classes=0, **spec["backbone"]["kwargs"]
        )
        head = DINOProjectionHead(
            model.num_features, obj["hidden_dim"], obj["bottleneck_dim"], obj["out_dim"], True
        )
        student = torch.nn.Sequential(model, head)
        teacher = copy.deepcopy(model)
        teacher_head = DINOProjectionHead(
            model.num_features, obj["hidden_dim"], obj["bottleneck_dim"], obj["out_dim"], True
        )
        teacher_head.load_state_dict(head.state_dict())
        teacher = torch.nn.Sequential(teacher, teacher_head).requires_grad_(False)
        criterion = DINOLoss(obj["out_dim"], warmup_teacher_temp_epochs=1)
        transform = DINOTransform(
            global_crop_size=size,
            local_crop_size=size // 2,
            n_local_views=LOCAL_CROPS,
            cj_sat=0.0,
            cj_hue=0.0,
            random_gray_scale=0.0,
            solarization_prob=0.0,
            normalize={"mean": [0.5] * 3, "std": [0.25] * 3},
        )
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=0.04)
        order = torch.randperm(len(train)).tolist()
        start = time.perf_counter()
        images = 0
        for b in range(len(order) // BATCH):
            views = [
                transform(Image.fromarray(train.image(i)).convert("RGB"))
                for i in order[b * BATCH : (b + 1) * BATCH]
            ]
            batches = [torch.stack([v[j] for v in views]) for j in range(2 + LOCAL_CROPS)]
            with torch.no_grad():
                t_out = list(teacher(torch.cat(batches[:2])).chunk(2))
            s_out = list(student(torch.cat(batches[:2])).chunk(2))
            s_out += list(student(torch.cat(batches[2:])).chunk(LOCAL_CROPS))
            loss = criterion(t_out, s_out, epoch=0)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 3.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            update_momentum(student, teacher, 0.996)
            images += BATCH
        return time.perf_counter() - start, images

    return step_all


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(_common.parser(__doc__.splitlines()[0]), argv)
    threads = _common.setup_threads(args.threads)
    images = 64 if args.quick else 256
    reps = args.reps or (1 if args.quick else 3)
    spec = recipe(images, args.quick)
    hand = make_hand(spec)
    work = Path(tempfile.mkdtemp(prefix="hfm-bench-pretrain-"))
    timings: dict[str, list[float]] = {"hfm_loop": [], "hfm_call": [], "hand": []}
    counts: dict[str, int] = {}

    def hfm_side() -> None:
        loop, call, n = run_hfm(spec, work / "out")
        timings["hfm_loop"].append(loop)
        timings["hfm_call"].append(call)
        counts["hfm"] = n

    def hand_side() -> None:
        seconds, n = hand()
        timings["hand"].append(seconds)
        counts["hand"] = n

    _common.interleaved({"hfm": hfm_side, "hand": hand_side}, reps=reps, warmup=args.warmup)
    keep = slice(args.warmup, None)  # warm-up rounds are recorded by the callbacks too: drop them
    hfm_loop, hfm_call, hand_t = timings["hfm_loop"][keep], timings["hfm_call"][keep], timings["hand"][keep]
    ratio = _common.paired_ratio(hand_t, hfm_loop)  # hfm images/s over hand images/s (same image count)
    assert counts["hfm"] == counts["hand"], counts
    rows = [
        {
            "side": "hand-written lightly loop",
            "median s": _common.median(hand_t),
            "images/s": counts["hand"] / _common.median(hand_t),
        },
        {
            "side": "hfm.pretrain training loop",
            "median s": _common.median(hfm_loop),
            "images/s": counts["hfm"] / _common.median(hfm_loop),
        },
        {
            "side": "hfm.pretrain whole call",
            "median s": _common.median(hfm_call),
            "images/s": counts["hfm"] / _common.median(hfm_call),
        },
    ]
    print(_common.fmt_table(rows))
    _common.print_ratio("pretrain images/s hfm / hand-written", ratio, ">= 0.9", ratio >= 0.9)
    _common.write_result(
        "pretrain_throughput",
        {
            "machine": _common.machine_info(threads),
            "settings": {
                "recipe": spec,
                "images_per_epoch": counts["hfm"],
                "reps": reps,
                "warmup": args.warmup,
            },
            "seconds": timings,
            "rows": rows,
            "ratio": ratio,
        },
        args,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
