"""What is done to images on the training device: perturbations named by id (filters,
resolution, noise, ...), training-time augmentation, and the sample transforms that carry
them (:mod:`readrace.transforms.sample`).

This package imports nothing: :mod:`readrace.transforms.perturbation_ids` is imported when
the Snakefile validates a config, which must not pay for importing torch."""
