"""DFIG: detecting GAN-generated face images from the learned noise pattern (LNP) and its spectra.

The library behind the notebooks in ``notebooks/``, in layers (``docs/architecture.md`` has the
picture and every module):

- :mod:`dfig.core`      computation without file trees: spectra, networks, the CycleISP denoiser, metrics
- :mod:`dfig.data`      dataset layout, labels, robust image loading, transforms, loaders, synthetic data
- :mod:`dfig.stages`    segment -> lnp -> train -> predict / robustness, and the classical peers
- :mod:`dfig.report`    tables, figures, the run manifest and the paper
- infrastructure        :mod:`dfig.paths`, :mod:`dfig.io`, :mod:`dfig.runlog`, :mod:`dfig.fallback`,
                        :mod:`dfig.weights`, :mod:`dfig.standin`, :mod:`dfig.tree`, :mod:`dfig.notebook`, ...
- commands              ``python -m dfig.segment | lnp | train | predict | peers | weights``
"""

__version__ = "2.0.0"
