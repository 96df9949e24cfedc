"""Computation on tensors and arrays, with no file trees: spectra, the detector networks, the
CycleISP denoiser and the metrics. Nothing here reads a profile or writes a report."""
