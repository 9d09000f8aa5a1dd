"""Poisoned-sample detectors: each scores every sample of the poisoned training set with the
backdoored model (the attack artifact), flags the suspicious ones, and is judged against the
recorded poison indices (``detection_*`` metrics); optionally the model is retrained without the
flagged samples (``retrain_epochs`` > 0)."""
