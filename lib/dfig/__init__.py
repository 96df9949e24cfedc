"""DFIG: detecting GAN-generated face images from the learned noise pattern (LNP) and its spectra.

The library behind the notebooks in ``notebooks/``. One module per stage:

- :mod:`dfig.paths`     every path, derived from the project root and the profile
- :mod:`dfig.io`        atomic writes, figure/table/JSON savers that record provenance
- :mod:`dfig.runlog`    what a dataset-wide stage did, skipped and failed
- :mod:`dfig.data`      dataset layout, labels, robust image loading, transforms, loaders, synthetic data
- :mod:`dfig.weights`   registry of the official checkpoints (SAM, CycleISP, ImageNet backbones)
- :mod:`dfig.segment`   SAM face masks (and labelled fallbacks)
- :mod:`dfig.denoise`   the CycleISP RGB denoiser (and a labelled classical fallback)
- :mod:`dfig.lnp`       LNP extraction over a dataset tree (compat / clean save modes)
- :mod:`dfig.spectra`   FFT amplitude and phase of the LNP
- :mod:`dfig.models`    attention block, fusion modes 0/1/2, backbones
- :mod:`dfig.train`     CNNDetection-style training (``python -m dfig.train``)
- :mod:`dfig.metrics`   accuracy, AP, ROC-AUC, EER, bootstrap intervals
- :mod:`dfig.predict`   inference on LNP folders or raw photos (``python -m dfig.predict``)
- :mod:`dfig.plots`, :mod:`dfig.report`  figures, tables and the paper
"""

__version__ = "2.0.0"
