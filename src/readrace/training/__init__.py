"""The training engine: fit a network on the image cache, resumably, and predict with it.

One module, one job (import from them; this package imports nothing, so that importing it
costs nothing):

- :mod:`~readrace.training.engine`: :func:`fit`, the loop, resumption and the lifecycle of
  the output files;
- :mod:`~readrace.training.config`: :class:`TrainConfig`, the hyperparameters;
- :mod:`~readrace.training.parts`: the replaceable parts (model builder, objective,
  optimiser, scheduler, batch sampler, privacy hook) and their defaults;
- :mod:`~readrace.training.batches`: reading batches of cache rows onto the device;
- :mod:`~readrace.training.checkpoint`: the files, the run fingerprint, :func:`array_digest`;
- :mod:`~readrace.training.rng`: the named random streams and their states;
- :mod:`~readrace.training.device`: device, precision, memory format, input normalisation;
- :mod:`~readrace.training.inference`: :func:`predict` and :func:`load_model`.
"""
