"""Masked-token pretraining of a text classifier's encoder on the task's own training texts, labels unused
(stage `pretraining` with an RNN or Transformer classifier; evaluation/pretraining.py runs the study).

A share `mask_fraction` of each text's known tokens (ids >= 2) is replaced with <unk> and a linear token
head over the encoder's per-position states predicts the ids that were there (BERT's objective, with
<unk> as the mask: the tokenizer has no other free id). A bidirectional RNN reads the masked position
only as <unk>, so neither family can copy the answer. The classifier's embedding and encoder (every
tensor but its `head`) then start the pretrained arm.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dlops.params import TrainConfig

UNK_ID = 1
Split = tuple[Any, Any]


class MaskedTokens(nn.Module):
    """A text classifier (`body`, with `token_states`) plus a token head; forward returns (logits of the
    masked positions, cross-entropy). Training draws masks from torch's seeded RNG; evaluation uses a
    fixed mask (seed 0 per call), so the validation loss compares epochs on the same question."""

    is_classifier = False

    def __init__(self, body: nn.Module, vocab_size: int, mask_fraction: float) -> None:
        super().__init__()
        self.body, self.mask_fraction, self.vocab_size = body, mask_fraction, vocab_size
        head = body.head
        assert isinstance(head, nn.Linear)  # the text classifiers' head reads their pooled states
        self.tokens = nn.Linear(head.in_features, vocab_size)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """The positions to hide (bool, x's shape): vocabulary tokens (not <unk>, not spelled-out words)
        drawn at `mask_fraction`, from torch's seeded RNG in training and from a fixed seed in evaluation."""
        gen = None if self.training else torch.Generator(device=x.device).manual_seed(0)
        known = (x > UNK_ID) & (x < self.vocab_size)
        return (torch.rand(x.shape, generator=gen, device=x.device) < self.mask_fraction) & known

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = self.mask(x)
        states: torch.Tensor = self.body.token_states(x.masked_fill(chosen, UNK_ID))  # type: ignore[operator]
        chosen = chosen[:, : states.shape[1]]  # trimmed columns are padding: nothing was chosen there
        logits = self.tokens(states[chosen])  # (M, V)
        if not len(logits):
            return logits, states.sum() * 0.0  # no known token in the batch: nothing to learn
        return logits, nn.functional.cross_entropy(logits.float(), x[:, : states.shape[1]][chosen])


def train_masked_encoder(
    family: str,
    config: dict[str, Any],
    train: TrainConfig,
    data: dict[str, Split],
    num_classes: int,
    input_shape: tuple[int, ...],
    mask_fraction: float,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The classifier's body trained on every training text to predict masked tokens (early stopping on
    the validation texts' masked-token loss). Returns its tensors (the classifier's `head` left out) and
    a summary: epochs, best epoch, masked-token loss and accuracy on the validation texts."""
    from dlops.models.registry import build_model
    from dlops.training.loop import seed_everything
    from dlops.training.loop import train as fit

    seed_everything(train.seed)
    body = build_model(family, input_shape=input_shape, num_classes=num_classes, config=config)
    model = MaskedTokens(body, int(config["vocab_size"]), mask_fraction)
    result = fit(model, {"train": data["train"], "val": data["val"]}, train)
    accuracy = masked_accuracy(model, data["val"][0])  # `fit` loaded the best epoch's weights
    tensors = {k: v.detach().cpu() for k, v in body.state_dict().items() if not k.startswith("head.")}
    best = result.history[result.best_epoch - 1]
    summary = {
        "objective": "masked-tokens",
        "mask_fraction": mask_fraction,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "val_masked_token_loss": best["val/loss"],
        "val_masked_token_accuracy": accuracy,
    }
    return tensors, summary


@torch.no_grad()
def masked_accuracy(model: MaskedTokens, x: Any, chunk: int = 512) -> float:
    """Share of the masked tokens of `x` (the fixed evaluation mask) that the model names exactly."""
    model.eval()
    device = next(model.parameters()).device
    ids = torch.as_tensor(x, dtype=torch.int64)
    right = total = 0
    for start in range(0, len(ids), chunk):
        xb = ids[start : start + chunk].to(device)
        chosen = model.mask(xb)  # the same positions forward hides (eval mode: fixed seed)
        logits, _ = model(xb)
        right += int((logits.argmax(-1) == xb[chosen]).sum())
        total += int(chosen.sum())
    return right / max(total, 1)


def body_loader(tensors: dict[str, torch.Tensor]) -> Any:
    """The function that puts the pretrained embedding and encoder into a fresh classifier of the same
    architecture (its head keeps its seeded initial weights) and says which tensors it loaded."""

    def load(model: nn.Module) -> dict[str, Any]:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or any(not key.startswith("head.") for key in missing):
            raise ValueError(f"pretrained encoder does not fit the classifier: {missing=} {unexpected=}")
        return {"loaded": sorted(tensors), "mapped": {}, "unused": []}

    return load
