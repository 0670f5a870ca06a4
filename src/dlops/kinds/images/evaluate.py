"""Evaluation that only an image classifier gets: integrated-gradient attributions of a few test images,
drawn like every other project figure (byte-identical PNGs for identical input)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlops.evaluation.images import show_image
from dlops.evaluation.plots import png_figure

if TYPE_CHECKING:
    from torch import nn


def attribution_grid(model: nn.Module, x: Any, y: Any, path: Path, steps: int = 32) -> Path:
    """Integrated-gradients attributions (captum; all-zero baseline, `steps` steps) of the target class
    `y` (N,) for images `x` (N, C, H, W): one row per image, the image beside its attribution heat map
    (summed over channels; red = evidence for the class, blue = against; colour scale per image).

    `model.forward(x)` returns `(logits, loss)`; it runs in eval mode (its mode is restored afterwards)
    on the device of its parameters.
    """
    import torch
    from captum.attr import IntegratedGradients

    device = next(model.parameters()).device
    inputs = torch.as_tensor(x, dtype=torch.float32).to(device)  # (N, C, H, W)
    targets = torch.as_tensor(y, dtype=torch.int64).to(device)  # (N,)
    was_training = model.training
    model.eval()
    try:
        ig = IntegratedGradients(lambda batch: model(batch)[0])
        attributions = ig.attribute(
            inputs,
            baselines=torch.zeros_like(inputs),
            target=targets,
            n_steps=steps,
            internal_batch_size=max(1, len(inputs)) * 8,
        )
    finally:
        model.train(was_training)
    heat = attributions.detach().sum(dim=1).cpu().double().numpy()  # (N, H, W)
    images = inputs.detach().cpu().double().numpy().clip(0.0, 1.0)
    labels = targets.cpu().numpy()
    path = Path(path)
    with png_figure(path, (5.0, 2.2 * len(images))) as fig:
        axes = fig.subplots(len(images), 2, squeeze=False)
        for i in range(len(images)):
            image_ax, heat_ax = axes[i]
            show_image(image_ax, images[i])
            image_ax.set_title(f"class {labels[i]}", fontsize="small")
            limit = float(np.abs(heat[i]).max()) or 1.0
            shown = heat_ax.imshow(heat[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
            heat_ax.set_title("integrated gradients", fontsize="small")
            fig.colorbar(shown, ax=heat_ax, shrink=0.8)
            for ax in (image_ax, heat_ax):
                ax.set_xticks([])
                ax.set_yticks([])
    return path
