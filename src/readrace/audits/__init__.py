"""Audits of trained models: subgroup performance, race in their features, adversarial
robustness, and the patient-level membership privacy audit (shadow models, record-level
attacks, disparities) with DP-SGD as its mitigation."""
