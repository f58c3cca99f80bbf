"""What a user allows when a backbone is fetched and built, carried as one frozen object.

Which revision to load, whether repository code may run and whether pickled weights may be read are decided
once, by the user, and then travel together from the recipe or the call to the download and the loaders.
Both opt-ins are off unless asked for by name; pickled weights are then read with
``torch.load(weights_only=True)``, never with plain ``pickle``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Weights are fetched as safetensors; pickled weights only with ``allow_pickle`` and only when a revision has
# no safetensors at all (the loaders read them with ``torch.load(weights_only=True)``).
WEIGHT_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.md")
CODE_PATTERNS: tuple[str, ...] = ("*.py",)
# The pickled weight files timm, transformers and open_clip publish (not optimizer or training-args pickles).
PICKLE_PATTERNS: tuple[str, ...] = (
    "pytorch_model.bin",
    "pytorch_model-*.bin",
    "pytorch_model.pth",
    "model.pth",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "RETFound_*.pth",  # YukunZhou/RETFound_*: <repo name>.pth (rmaphoh/RETFound_MAE main_finetune.py)
)


@dataclass(frozen=True)
class LoadPolicy:
    """The revision to load and the two opt-ins, as the user gave them.

    Attributes:
        revision: Branch, tag or commit; ``None``: the catalog entry's pin, else what the Hub serves.
        trust_remote_code: Allow code from the Hub repository to run (fetches its ``*.py`` files).
        allow_pickle: When a revision has no safetensors, fetch and read its pickled weights, restricted to
            tensors (``torch.load(weights_only=True)``). Safetensors always win.
    """

    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        # The opt-ins guard code execution and unpickling: a truthy string must not switch them on.
        for name in ("trust_remote_code", "allow_pickle"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"LoadPolicy.{name} must be True or False, got {getattr(self, name)!r}")
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise TypeError(f"LoadPolicy.revision must be a non-empty string or None, got {self.revision!r}")

    @classmethod
    def from_keywords(
        cls,
        policy: LoadPolicy | None,
        *,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
    ) -> LoadPolicy:
        """The policy a public function was given: ``policy``, or one made from the loose keywords.

        Raises:
            TypeError: When both a policy and a loose keyword are given (which one should win is unclear).
        """
        if policy is None:
            return cls(revision=revision, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        if revision is not None or trust_remote_code or allow_pickle:
            raise TypeError("pass either policy= or revision/trust_remote_code/allow_pickle, not both")
        return policy

    def pinned(self, default: str | None) -> LoadPolicy:
        """This policy, with ``revision`` falling back to ``default`` (a catalog entry's pinned commit)."""
        return (
            self
            if self.revision is not None or default is None
            else dataclasses.replace(self, revision=default)
        )

    def download_patterns(self) -> list[str]:
        """The files a download may fetch: configs and safetensors, plus repository code when trusted."""
        return list(WEIGHT_PATTERNS) + (list(CODE_PATTERNS) if self.trust_remote_code else [])
