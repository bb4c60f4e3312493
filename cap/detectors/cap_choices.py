"""The values of CAP's categorical settings, without torch: the detector declares its
settings with them (:mod:`cap.detectors.cap_detector`), the model and its training check
them (:mod:`cap.detectors.cap_model`, :mod:`cap.detectors.cap_training`)."""

#: Projection heads of Table 2: L, L+ReLU, L+ReLU+L.
HEADS = ("linear", "linear_relu", "linear_relu_linear")
#: Initialisations of the head's matrices; the released code uses Xavier-uniform.
INITS = ("xavier", "identity")
#: Distance term of the constraint Ω (eq. 6): released code ("mse") or paper text ("sq_l2").
CONSTRAINTS = ("mse", "sq_l2")
#: Training matmul precisions (see :mod:`cap.detectors.cap_training`); "highest" is exact float32.
MATMUL_PRECISIONS: tuple[str, ...] = ("highest", "high", "bf16")
