"""From predictions to results: metrics with patient-bootstrap intervals, scoring per
evaluation level, tables and figures. Nothing here imports torch except the figures that
draw perturbed images."""
