"""What is done to images on the training device: perturbations named by id (filters,
resolution, noise, ...) and training-time augmentation."""
