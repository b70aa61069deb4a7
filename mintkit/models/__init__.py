"""Audited models (the zoo, its convnets and the InsightFace IResNet, each with named taps), the MINT classifiers,
the forward-hook primitive, activation extraction and checkpoints."""
