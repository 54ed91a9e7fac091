"""Datasets: embedded toy distributions and MNIST-family images, all held as one tensor."""

from gankit.data.registry import Data, load_dataset

__all__ = ["Data", "load_dataset"]
