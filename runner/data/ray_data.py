"""The study's images as Ray Datasets: built once on the driver, materialized, handed to every trial.

Each dataset holds decoded uint8 images (column ``image``, a tensor column) and ``label``. A worker
reads its shard once per trial and keeps it in memory (a few MB at 64x64); augmentation then runs
per batch in the worker (runner.data.augment), so no Ray Data task runs per epoch or per trial.
"""

from __future__ import annotations

import numpy as np

from runner.data.source import ImageSet
from runner.data.split import NO_IMAGES


def to_ray_datasets(images: ImageSet) -> dict:
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI owns the console

    def table(x: np.ndarray, y: np.ndarray):
        return pa.table({"image": ArrowTensorArray.from_numpy(x), "label": pa.array(y, type=pa.int64())})

    splits = {"train": (images.train_x, images.train_y), "val": (images.val_x, images.val_y)}
    if images.has_test:  # nothing is picked on it: each trial evaluates its best epoch's model on it
        splits["test"] = (images.test_x, images.test_y)
    # from_blocks works out each block's metadata here; from_arrow ran a Ray task for it, which waited for a
    # worker process to start and import Ray Data (seconds of CPU) before any trial could.
    return {name: ray.data.from_blocks([table(x, y)]) for name, (x, y) in splits.items()}


def read_all(dataset) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a materialized Dataset (a trial in its own process) or of a DataIterator (a worker's shard
    in a DDP group) as (uint8 images, int64 labels).

    A Dataset's blocks are taken from the object store as they are (``to_arrow_refs``): iterating it would
    start Ray Data's executor, whose stats and autoscaling actors are two more processes importing Ray Data
    (seconds of CPU each) just as a study's first trials start."""
    if hasattr(dataset, "to_arrow_refs"):
        import ray
        from ray.data.block import BlockAccessor

        batches = [BlockAccessor.for_block(t).to_batch_format("numpy") for t in ray.get(dataset.to_arrow_refs())]
    else:
        batches = dataset.iter_batches(batch_size=None, batch_format="numpy")
    xs, ys = [], []
    for batch in batches:
        if not len(batch["label"]):
            continue
        xs.append(batch["image"])
        ys.append(batch["label"])
    if not xs:
        return NO_IMAGES
    return np.ascontiguousarray(np.concatenate(xs), dtype=np.uint8), np.concatenate(ys).astype(np.int64)
