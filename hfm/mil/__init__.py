"""Multiple-instance learning: aggregators that turn a bag of instance embeddings into one prediction.

The data side (bags, bag draws) lives in :mod:`hfm.data.bags`; the tuner ``mil`` (:mod:`hfm.tuners.mil`) is the
adapter (backbone + aggregator + head); the method ``mil`` (:mod:`hfm.methods.mil`) trains it on cached
instance embeddings; :mod:`hfm.mil.outputs` writes attention weights and pictures of what a model looked at.
"""
