"""Audited models (the zoo, its convnets and the InsightFace IResNet, each with named taps), the MINT classifiers,
the forward-hook primitive, activation extraction, checkpoints, and the audited model (`audited`: its recipe,
training through the cache, its info and quality)."""
