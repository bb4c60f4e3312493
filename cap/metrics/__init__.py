"""How a run is measured: image metrics of its scores (AUROC, AUPR, FPR at 95% TPR,
:mod:`cap.metrics.image`) and pixel metrics of its anomaly maps against defect masks
(pixel AUROC, AUPRO, :mod:`cap.metrics.localization`)."""
