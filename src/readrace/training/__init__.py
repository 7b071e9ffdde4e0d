"""The training engine: fit a network on the image cache, resumably, and predict with it."""
