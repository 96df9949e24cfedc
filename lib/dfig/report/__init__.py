"""From results to what a reader sees: tables and evaluation (:mod:`~dfig.report.evaluate`),
figures (:mod:`~dfig.report.plots`), the run manifest (:mod:`~dfig.report.manifest`) and the
paper (:mod:`~dfig.report.paper`)."""
