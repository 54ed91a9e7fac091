"""Datasets: embedded toy distributions and MNIST-family images, all held as one tensor."""

from gankit.data.batches import Batches
from gankit.data.registry import DATASETS, Data, DataSpec, load_dataset

__all__ = ["Batches", "DATASETS", "Data", "DataSpec", "load_dataset"]
