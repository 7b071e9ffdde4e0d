"""Audits of trained models: the patient-level membership privacy audit (shadow models,
record-level attacks, disparities) and DP-SGD as its mitigation."""
