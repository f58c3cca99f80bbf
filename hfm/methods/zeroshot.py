"""Methods that read class prompts: ``zero-shot`` (k = 0, no label) and ``text-init`` (k >= 1, from the text head).

Both need a tuner with a text-settable head (``text-probe``) and a backbone with a text tower; the runner builds
the text head once per sweep from the recipe's ``prompts`` (:meth:`~hfm.methods.base.RunContext.text_head`).

* ``zero-shot``: the head *is* the text classifier; nothing is trained, the test split is predicted from its
  cached embeddings and evaluated like any run.
* ``text-init``: the head starts from the text classifier and is fitted on the labelled examples with a pull
  toward it, whose strength validation chooses (see :mod:`hfm.tuners.text_probe`); before fitting it predicts
  exactly what ``zero-shot`` predicts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hfm.errors import MethodError
from hfm.methods import register_method
from hfm.methods.base import Method, MethodConfig, MethodResult, Needs, RunContext
from hfm.methods.supervised import Supervised, as_numpy
from hfm.tuners.base import AdaptedModel


@dataclasses.dataclass
class NoParams(MethodConfig):
    """No parameters."""


def _check_text_tuner(method: str, tuner: type[AdaptedModel]) -> None:
    if not hasattr(tuner, "set_text_head"):
        raise MethodError(
            f"method {method!r} builds the head from class prompts; tuner {tuner.tuner_name!r} has no text head: "
            "use tuner text-probe"
        )


@register_method("zero-shot")
class ZeroShot(Method):
    """Predict from class prompts alone: no labelled example, no training (k = 0)."""

    config_cls = NoParams
    needs = Needs(inputs="embeddings", labels=False, text=True)

    def check(self, tuner: type[AdaptedModel]) -> None:
        super().check(tuner)
        _check_text_tuner(self.method_name, tuner)

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        text = ctx.text_head()
        model.set_text_head(text)  # type: ignore[operator]
        proba = model.predict_proba_embeddings(ctx.embeddings().test)  # type: ignore[operator]
        info: dict[str, Any] = {"zero_shot": True, "text_head": text.to_dict()}
        return MethodResult(proba=as_numpy(proba), info=info)


@register_method("text-init")
class TextInit(Supervised):
    """Start the head from the class prompts' text head, then fit it on the labelled examples toward them."""

    config_cls = NoParams
    needs = Needs(inputs="embeddings", text=True)

    def check(self, tuner: type[AdaptedModel]) -> None:
        super().check(tuner)
        _check_text_tuner(self.method_name, tuner)

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        text = ctx.text_head()
        model.set_text_head(text)  # type: ignore[operator]
        result = super().fit(model, ctx)
        result.info = {**result.info, "text_head": {"fingerprint": text.fingerprint}}
        return result
