"""Ophthalmology backbones. Each entry cites where its loading facts come from."""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

SPECS: list[BackboneSpec] = []
