"""What a base model's license means for publishing an adapter trained on it.

The Hub accepts a fixed list of license ids in card metadata (https://huggingface.co/docs/hub/repositories-licenses);
anything else is published as ``license: other`` with ``license_name`` and ``license_link``.
"""

from __future__ import annotations

from dataclasses import dataclass

HUB_LICENSES = frozenset(
    [
        "apache-2.0",
        "mit",
        "openrail",
        "bigscience-openrail-m",
        "creativeml-openrail-m",
        "bigscience-bloom-rail-1.0",
        "bigcode-openrail-m",
        "afl-3.0",
        "artistic-2.0",
        "bsl-1.0",
        "bsd",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "c-uda",
        "cc",
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-2.5",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nd-4.0",
        "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0",
        "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cdla-sharing-1.0",
        "cdla-permissive-1.0",
        "cdla-permissive-2.0",
        "wtfpl",
        "ecl-2.0",
        "epl-1.0",
        "epl-2.0",
        "etalab-2.0",
        "eupl-1.1",
        "eupl-1.2",
        "agpl-3.0",
        "gfdl",
        "gpl",
        "gpl-2.0",
        "gpl-3.0",
        "lgpl",
        "lgpl-2.1",
        "lgpl-3.0",
        "isc",
        "h-research",
        "intel-research",
        "lppl-1.3c",
        "ms-pl",
        "apple-ascl",
        "apple-amlr",
        "mpl-2.0",
        "odc-by",
        "odbl",
        "openrail++",
        "osl-3.0",
        "postgresql",
        "ofl-1.1",
        "ncsa",
        "unlicense",
        "zlib",
        "pddl",
        "lgpl-lr",
        "deepfloyd-if-license",
        "fair-noncommercial-research-license",
        "llama2",
        "llama3",
        "llama3.1",
        "llama3.2",
        "llama3.3",
        "llama4",
        "gemma",
        "unknown",
        "other",
    ]
)
# Open licenses that allow derivatives and redistribution even when the repo is gated behind a form.
_PERMISSIVE = frozenset(
    [
        "apache-2.0",
        "mit",
        "bsd",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-2.5",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "mpl-2.0",
        "isc",
        "unlicense",
        "zlib",
        "openrail",
        "openrail++",
        "bigscience-openrail-m",
        "creativeml-openrail-m",
        "bigcode-openrail-m",
    ]
)
# Research-only licenses that are not Creative Commons ids (Microsoft Research License Agreement, FAIR NC).
_NON_COMMERCIAL_OTHER = frozenset(
    {"msrla", "fair-noncommercial-research-license", "h-research", "intel-research"}
)


@dataclass(frozen=True)
class LicensePolicy:
    """The publishing consequences of one base-model license.

    Attributes:
        base_license: The base model's license id as the catalog records it.
        no_derivatives: The license forbids sharing derivatives (``-nd`` Creative Commons licenses).
        restricted: The repo is gated under terms that are not a known open license, so redistribution may
            be forbidden; the user must confirm they may share.
        non_commercial: Commercial use is not allowed; carried into the card.
    """

    base_license: str
    no_derivatives: bool
    restricted: bool
    non_commercial: bool

    @property
    def needs_ack(self) -> bool:
        return self.no_derivatives or self.restricted

    def refusal(self, base_model: str) -> str:
        """One line: why the push stops and how to go on."""
        if self.no_derivatives:
            why = f"the base model {base_model} is licensed {self.base_license}, which forbids sharing derivatives"
        else:
            why = f"the base model {base_model} is gated under {self.base_license!r} terms that may forbid redistribution"
        return (
            f"refusing to push: {why}; an adapter applied to it may count as one. Check the license, then pass "
            "--license-ack (license_ack=True) to publish anyway"
        )


def policy_for(license_id: str | None, *, gated: bool = False) -> LicensePolicy:
    """The :class:`LicensePolicy` of a base model with ``license_id`` (gated or not)."""
    lic = (license_id or "unknown").strip().lower()
    parts = lic.split("-")
    no_derivatives = lic.startswith("cc") and "nd" in parts
    non_commercial = (
        ("nc" in parts and lic.startswith("cc"))
        or lic in _NON_COMMERCIAL_OTHER
        or "noncommercial" in lic
        or "non-commercial" in lic
    )
    restricted = gated and lic not in _PERMISSIVE
    return LicensePolicy(lic, no_derivatives, restricted, non_commercial)


def card_license(base_license: str | None, user_license: str | None, base_link: str) -> dict[str, str]:
    """Card metadata for the license: the user's choice, else the base model's (``other`` when not a Hub id)."""
    lic = (user_license or base_license or "unknown").strip().lower()
    if lic in HUB_LICENSES:
        return {"license": lic}
    return {"license": "other", "license_name": lic, "license_link": base_link}
