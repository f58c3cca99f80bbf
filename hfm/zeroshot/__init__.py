"""Zero-shot classification with vision-language backbones: class prompts, text towers, text-built heads.

A recipe's ``prompts`` block (:mod:`hfm.zeroshot.prompts`) gives each class its descriptions; the backbone's
text tower (:mod:`hfm.zeroshot.text`) embeds them and their ensemble becomes a linear head
(:class:`~hfm.zeroshot.text.TextHead`). The ``zero-shot`` method uses that head with no label (k = 0); the
``text-init`` method starts the ``text-probe`` tuner's head from it and fits toward the labelled examples.
"""
