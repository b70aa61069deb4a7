"""The skeleton every paper's notebook shares: one `setup`, one thread policy, one `Context`.

A notebook reads

    P = paper.Params.from_notebook(globals())   # typed, checked (mintkit.core.params)
    ctx = paper.setup(P)                         # seed, device, threads, pool on the device, run folder

and passes ``(ctx, ..., P)`` to its stage functions: the context first, the parameters last. A paper
whose data is more than one registry dataset (MINT's external trees) passes its own ``pool``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from mintkit.core import precision as prec
from mintkit.core.data import Pool, load_pool
from mintkit.core.null import CHANCE_ALPHA, POSITIVE, chance_table, join_variant, null_label
from mintkit.core.params import Params
from mintkit.core.records import DEFINITION, Run
from mintkit.core.train import apply_threads, pick_device, seed_everything


@dataclass
class Context:
    """What every stage needs besides the parameters: the run folder, the data pool and the device."""

    run: Run
    pool: Pool
    device: torch.device


def setup(P: Params, pool: Pool | None = None, *, protocol: str = "heldout", image_size: int = 0,
          variant: str = DEFINITION) -> Context:
    """Seed, device, threads, the pool on the device (``P.dataset`` unless given) and the run folder.

    The run folder gets ``params.json`` (every field of ``P``) and ``env.json`` at once; its rows carry
    ``protocol`` and ``variant`` (mintkit.core.records.Run); env.json's ``precision`` is what ``P.precision``
    resolved to on this device (the process's policy from here on). A null control (``P.null_model``,
    mintkit.core.null) adds ``null=<mode>`` to the variant and a positive control (``P.positive_control``)
    ``control=leaky``, so their rows never join the defined cells.
    """
    seed_everything(P.seed)
    device = pick_device(P.device)
    apply_threads(P.threads, device)
    resolved = prec.resolve(P.precision, device)  # a bf16 request on a CPU without it fails here, before any work
    prec.set_policy(P.precision)
    if pool is None:
        pool = load_pool(P.dataset, P.data_root, image_size=image_size or None)
    variant = join_variant(variant, null_label(getattr(P, "null_model", "off")),
                           POSITIVE if getattr(P, "positive_control", False) else "")
    run = Run(P.out_dir, P.PAPER, P.as_dict(), seed=P.seed, device=device, protocol=protocol, variant=variant,
              precision=resolved)
    return Context(run, pool.to(device), device)


def null_check(run: Run, null_model: str) -> pd.DataFrame:
    """The null control's reading of this run's membership cells (mintkit.core.null.chance_table: accuracy, AUC,
    n evaluated, binomial p against 0.5, beyond_chance), with one line saying what it means. With ``null_model``
    off the table shows how far the defined run is from chance, and the line says how to run the control."""
    cells = chance_table(run.rows)
    far = int(cells["beyond_chance"].sum())
    if null_model == "off":
        print(f"null control off: {far} of {len(cells)} cells beyond chance on the audited model (binomial p < "
              f"{CHANCE_ALPHA:g}). Rerun with null_model='other-data' (or -p null_model other-data): every cell "
              "must then read chance (docs/variants.md, Null control)")
    else:
        verdict = "reads chance, as it must" if not far else "ARTIFACT: these cells measure the pipeline, not membership"
        print(f"null control {null_model}: {far} of {len(cells)} cells beyond chance (binomial p < {CHANCE_ALPHA:g}): "
              f"{verdict}")
    return cells
