"""Audited models (the zoo, its convnets and the InsightFace IResNet, each with named taps) and the MINT classifiers."""
