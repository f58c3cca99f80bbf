"""Supervised: learn from the labelled examples of the draw only (the baseline every other method is measured
against).

With a tuner that fits on cached embeddings (the probe) the head is fitted on the sweep's embeddings of the
labelled examples, choosing its regularisation on val; with any other tuner the model trains end to end with
:func:`hfm.train.fit` on the labelled images and this method's :meth:`~hfm.methods.base.Method.loss`
(cross-entropy with the configured label smoothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hfm.methods import register_method
from hfm.methods.base import Method, MethodResult, RunContext
from hfm.tuners.base import AdaptedModel


def as_numpy(proba: Any) -> np.ndarray:
    """Probabilities as float64 numpy (what the run writes), whatever tensor or array a model returned."""
    return np.asarray(torch.as_tensor(proba).float().cpu().numpy(), dtype=np.float64)


@register_method("supervised")
class Supervised(Method):
    """Labelled examples only; no parameters."""

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        splits = ctx.splits
        if self.uses_embeddings(type(model)):
            emb = ctx.embeddings()
            model.fit_embeddings(  # type: ignore[operator]
                emb.of(ctx.draw.indices),
                torch.as_tensor(splits.train.labels[ctx.draw.indices]),
                emb.val,
                torch.as_tensor(splits.val.labels),
            )
            info = dict(getattr(model, "fit_info", {}) or {})
            proba = model.predict_proba_embeddings(emb.test)  # type: ignore[operator]
            return MethodResult(proba=as_numpy(proba), info=info)

        from hfm.train import fit

        config, augment = ctx.train_config()
        train = ctx.images(ctx.labelled(), augment)
        val = ctx.images(splits.val) if len(splits.val) else None
        info = fit(model, train, val, config, loss=self.loss, method=self.method_name).to_dict()
        return MethodResult(proba=as_numpy(ctx.predict(model, splits.test)), info=info)
