"""The membership methods on an audited model, between the paper folders, the attacks and the audit above and
`mintkit.models` / `mintkit.core` below: `audited` (the audited model, built, trained through the cache, its
quality), `mint` (MINT's data, fit and scores), `loss` (the loss-threshold attack), `mplus` (aMINT's M+),
`modifiers` (gMINT's weight modifiers) and `modifier_variants` (readings of gMINT's protocol). Paper folders keep
their parameters, stage glue and reports only."""
