"""An audited model's training in progress, saved after every epoch so that an interrupted run resumes at its
last finished epoch instead of from scratch.

Why: on a CPU an audited ResNet50 at 64 px takes hours; a batch stopped by a session's end, a Slurm time limit
or Ctrl-C used to lose every epoch of the run it was in. The model cache (`mintkit.models.checkpoints`)
keeps one state file per cache key beside its entries, ``<key>.train-state.pt``, and deletes it once the
finished entry is written; a training that ends in a failed fit or a diverged loss deletes it too (it is not in
progress: the next run starts over). docs/mint.md, "Audited model".

What one file holds (all read back with ``torch.load(weights_only=True)``):

| field | what | why |
|---|---|---|
| key | the file's own name (``<cache key>.train-state.pt``) | a file of another recipe is never used |
| epoch | 0-based index of the last finished epoch | the loop goes on at ``epoch + 1`` |
| model, optim | the model's and the optimiser's ``state_dict`` | Adam's moments and step count |
| generator | the shuffling generator's state | the same batch order as without a stop |
| torch_rng | torch's global CPU generator state | the same dropout masks |
| history | the loop's record so far (JSON text), seconds spent included | per-epoch curves stay whole |
| stopping | early stopping's best score, best epoch, bad-epoch count (JSON) | patience counts across the stop |
| best_model, best_extra | the best epoch's weights and kept optimiser state (absent: none yet) | restored at the end |

On CPU a resumed run ends with bitwise the same weights as an uninterrupted one (tests/test_train_extract.py);
on CUDA the GPU's generator is not saved, so dropout masks after a resume differ (the result is as valid, not
bitwise equal). Written atomically: a run killed while writing leaves the previous epoch's file.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from mintkit.core.records import atomic_write_bytes

FORMAT = "mintkit-train-state-1"


def save(path: Path, *, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
         history: dict, stopping: dict, best: tuple[dict, dict] | None) -> None:
    """Write the state after 0-based `epoch` finished; `best`: (model state, kept optimiser state) or None."""
    state = {"format": FORMAT, "key": path.name, "epoch": epoch,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optim": optimizer.state_dict(), "generator": generator.get_state(),
             "torch_rng": torch.get_rng_state(), "history": json.dumps(history), "stopping": json.dumps(stopping)}
    if best is not None:
        state["best_model"] = {k: v.detach().cpu() for k, v in best[0].items()}
        state["best_extra"] = best[1]
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path | None) -> dict | None:
    """The state saved at `path`, or None (no file, a file saved under another name, i.e. another cache key, or one
    torch cannot read safely: training then starts from epoch 0, as it did before states were kept). history and
    stopping come back as dicts."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file: start over rather than trust it
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("key") != Path(path).name:
        return None
    state["history"] = json.loads(state["history"])
    state["stopping"] = json.loads(state["stopping"])
    return state
