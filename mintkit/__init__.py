"""mintkit: Membership Inference Test (MINT, aMINT, gMINT, Factors) reproduction kit."""
__version__ = "0.1.0"
