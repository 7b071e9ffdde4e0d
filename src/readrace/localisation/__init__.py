"""Where the race information lives: lung masks for the localisation experiments, Grad-CAM
saliency, the localisation table and its figures (kind ``localisation``,
:mod:`readrace.experiments.localisation`). The perturbations themselves (``lung``,
``nonlung``, ``patch-R-C``, ``occlude-R-C``, ``occlude-salient``) are in
:mod:`readrace.transforms`."""
