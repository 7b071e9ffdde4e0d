"""Confounders (the paper's Table 2): could patient variables or pixel statistics explain
race detection, and does the image model still read race where they are held fixed?

One module per job:

- :mod:`~readrace.confounders.features`: the feature sets (BMI, breast density, density + age,
  the 14 findings, age + sex + findings + BMI, intensity histograms) and the stated policy for
  missing and uncertain labels;
- :mod:`~readrace.confounders.tabular`: scikit-learn pipelines (imputation, one-hot encoding,
  scaling) with logistic regression, random forest or XGBoost, tuned by a search grouped by
  patient on the training split, written as predictions in the common contract;
- :mod:`~readrace.confounders.strata`: an image model's test predictions re-scored within
  BMI, age and sex strata and their intersections, without retraining;
- :mod:`~readrace.confounders.sampler`: the equal-distribution resampler of the training set;
- :mod:`~readrace.confounders.variables`: real variables (MIMIC-IV ``omr`` BMI matched in time);
- :mod:`~readrace.confounders.tables`: the long table, its Table-2 Markdown and the forest plot.

Torch-free except where a retrain calls the training engine (in the job script).
"""
