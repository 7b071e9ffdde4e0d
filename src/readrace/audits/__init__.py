"""Audits of trained models: subgroup performance, race in their features, robustness."""
