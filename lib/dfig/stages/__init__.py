"""The pipeline's stages: each turns one file tree into the next (segment -> lnp -> train ->
predict / robustness; peers are the classical baselines trained on the same splits). They build on
:mod:`dfig.core` and :mod:`dfig.data`, record what they did, and are run by the notebooks or by their
command lines (``python -m dfig.segment``, ``dfig.lnp``, ``dfig.train``, ``dfig.predict``, ``dfig.peers``)."""
