"""The membership methods on an audited model, between the paper folders, the attacks and the audit above and
`mintkit.models` / `mintkit.core` below (the audited model they read: `mintkit.models.audited`): `mint` (MINT's
data, its one fit and scores), `loss` (the one loss-threshold attack), `mplus` (aMINT's M+),
`modifiers` (gMINT's weight modifiers) and `modifier_variants` (readings of gMINT's protocol). Paper folders keep
their parameters, stage glue and reports only."""
