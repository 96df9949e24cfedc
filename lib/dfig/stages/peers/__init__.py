"""Classical peers beside DFIG: cheap, well-known detectors on the same splits, with the same metrics.

GAN-image forensics has strong cheap baselines; these run on the feature tree a DFIG run trains on
(an LNP tree written by ``dfig.stages.lnp``, or any ``{train,val,test}/{real,fake}`` image tree with
``highpass=True``), crop the same central face region as training's ``center_region`` and report as
the training runs do (``metrics/peer_<name>.json``, ``predictions/peer_<name>_{val,test}.csv``):

- ``logreg_spec2d``: logistic regression (standardised features, L2) on the 2-D log power spectrum of
  the grey-level residual, average-pooled to ``bins x bins`` (Dzanic et al. 2020; the linear probe of
  docs/experiments_sample.md);
- ``logreg_spec1d``: the same on the azimuthally averaged 1-D log spectrum (Durall et al. 2020);
- ``hgb_stats``: scikit-learn's ``HistGradientBoostingClassifier`` on residual statistics
  (per-channel moments and kurtosis, cross-channel correlations, high-frequency energy ratios);
- ``logreg_dct``: Frank et al. (ICML 2020): the log of the absolute 2-D DCT of the grey *photo* (every
  coefficient), standardised per coefficient, logistic regression; it reads the raw photos of the splits.

Each fitted peer is saved (``checkpoints/peer_<name>/peer.joblib``) so other test folders can be scored.

Hyper-parameters (``C``; learning rate and leaves) are chosen by validation ROC-AUC; the decision
threshold by validation accuracy (:func:`dfig.core.metrics.choose_threshold`). The test split is read only
after the model is fixed, by :func:`evaluate_peer`.
"""

from dfig.stages.peers.cli import build_parser, main
from dfig.stages.peers.features import (
    DEFAULT_BINS,
    DEFAULT_CROP,
    FEATURE_KINDS,
    center_crop_array,
    feature_vector,
    features,
    log_power,
    residual_of,
    sample_features,
)
from dfig.stages.peers.models import PEERS, FittedPeer, Peer, build_peer, evaluate_peer, fit_peer
from dfig.stages.peers.run import (
    load_fitted,
    options_like,
    run_peer,
    run_peers_like,
    save_fitted,
    score_arrays,
)

__all__ = [
    "FEATURE_KINDS",
    "DEFAULT_CROP",
    "DEFAULT_BINS",
    "PEERS",
    "Peer",
    "FittedPeer",
    "build_peer",
    "center_crop_array",
    "residual_of",
    "log_power",
    "feature_vector",
    "features",
    "sample_features",
    "fit_peer",
    "evaluate_peer",
    "run_peer",
    "run_peers_like",
    "save_fitted",
    "load_fitted",
    "score_arrays",
    "options_like",
    "build_parser",
    "main",
]
