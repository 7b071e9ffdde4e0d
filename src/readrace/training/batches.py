"""Reading batches of cache rows onto the training device.

The cache is ``(N, H, W)`` with values in [0, 1] (float16, usually memory-mapped). A batch is
a list of cache rows; :class:`BatchReader` turns it into a float32 ``(B, 1, H, W)`` tensor on
the device by one of three paths, fastest first:

1. the rows preloaded into device memory (when the train + validation subset is smaller than
   ``preload_max_gb``), indexed there;
2. a DataLoader whose workers read the memmap ahead of the device, into pinned host memory
   copied asynchronously;
3. direct reads in this process.

All three give the same pixels, so the path changes speed, never results.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence

import numpy as np
import torch

#: Rows read from the cache per copy when preloading, to bound host memory.
PRELOAD_CHUNK = 4096


def read_rows(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Rows of the cache as a tensor (pass ``rows`` sorted, so a memmap is read front to back)."""
    return torch.from_numpy(np.ascontiguousarray(images[rows]))


class RowsDataset(torch.utils.data.Dataset):
    """``dataset[rows]`` -> the images of those cache rows; used with a sampler of batches.

    Pickles an on-disk memmap as its file name and layout, so DataLoader workers started by
    spawn or forkserver reopen the file instead of receiving a copy of the whole cache.
    """

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return read_rows(self.images, rows)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        img = self.images
        # Only a memmap that maps its file directly (not a view into one) can be reopened
        # from (filename, offset, shape).
        if isinstance(img, np.memmap) and isinstance(img.base, mmap.mmap) and img.filename:
            order = "F" if img.flags.f_contiguous and not img.flags.c_contiguous else "C"
            state["images"] = ("memmap", img.filename, img.dtype.str, img.shape, img.offset, order)
        return state

    def __setstate__(self, state: dict) -> None:
        img = state["images"]
        if isinstance(img, tuple) and img[0] == "memmap":
            _, filename, dtype, shape, offset, order = img
            state["images"] = np.memmap(filename, dtype=dtype, mode="r", shape=shape, offset=offset, order=order)
        self.__dict__.update(state)


class BatchReader:
    """Turns lists of cache rows into float32 ``(B, 1, H, W)`` batches on ``device``.

    ``preload_rows``: rows to copy into device memory up front (path 1 of the module doc);
    batches must then only hold rows among them. ``num_workers > 0`` reads the other way
    through a DataLoader (path 2), ``0`` in this process (path 3).
    """

    def __init__(self, images: np.ndarray, device: torch.device, num_workers: int = 0,
                 preload_rows: np.ndarray | None = None) -> None:
        self.images = images
        self.device = device
        self.num_workers = num_workers
        self.pin = device.type == "cuda"
        self.preloaded: torch.Tensor | None = None
        self.preloaded_rows: np.ndarray | None = None
        if preload_rows is not None:
            self._preload(np.unique(preload_rows))

    @classmethod
    def for_rows(cls, images: np.ndarray, device: torch.device, rows: np.ndarray,
                 num_workers: int = 0, preload_max_gb: float = 0.0) -> BatchReader:
        """A reader for batches of ``rows``, preloading them when they take at most
        ``preload_max_gb`` GiB."""
        image_bytes = int(np.prod(images.shape[1:])) * np.dtype(images.dtype).itemsize
        fits = len(np.unique(rows)) * image_bytes <= preload_max_gb * 2**30
        return cls(images, device, num_workers, rows if fits else None)

    def _preload(self, rows: np.ndarray) -> None:
        dtype = torch.from_numpy(np.zeros(0, dtype=self.images.dtype)).dtype
        data = torch.empty((len(rows),) + tuple(self.images.shape[1:]), dtype=dtype, device=self.device)
        for start in range(0, len(rows), PRELOAD_CHUNK):
            chunk = read_rows(self.images, rows[start:start + PRELOAD_CHUNK])
            data[start:start + len(chunk)] = chunk.to(self.device)
        self.preloaded, self.preloaded_rows = data, rows

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.pin and not x.is_pinned():
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True).float().unsqueeze(1)

    def iterate(self, batches: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Yield ``(rows, images)`` for each batch of rows, in order."""
        if self.preloaded is not None:
            for rows in batches:
                pos = torch.from_numpy(np.searchsorted(self.preloaded_rows, rows)).to(self.device)
                yield rows, self.preloaded[pos].float().unsqueeze(1)
        elif self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                RowsDataset(self.images),
                sampler=list(batches),
                batch_size=None,  # each sampler item is already a whole batch of rows
                num_workers=self.num_workers,
                pin_memory=self.pin,
                # A private generator keeps the DataLoader from drawing on torch's global RNG.
                generator=torch.Generator().manual_seed(0),
            )
            # The loader first: it runs to exhaustion, so its workers shut down cleanly.
            for x, rows in zip(loader, batches):
                yield rows, self._to_device(x)
        else:
            for rows in batches:
                yield rows, self._to_device(read_rows(self.images, rows))
