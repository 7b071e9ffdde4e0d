"""The shard index: what the gather job reads the shards through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from readrace.ingest.gather import IngestError, read_shard_index, write_shard_index


def _shard(folder, number: int, n_rows: int, n_images: int) -> tuple[str, str, str]:
    rows, quarantine, images = (folder / f"shard-{number}.parquet", folder / f"shard-{number}.csv",
                                folder / f"shard-{number}.npy")
    pd.DataFrame({"image_id": [f"{number}-{k}" for k in range(n_rows)]}).to_parquet(rows)
    quarantine.write_text("file_id,reason,detail,patient_id\n")
    np.save(images, np.zeros((n_images, 4, 4), dtype=np.float16))
    return str(rows), str(quarantine), str(images)


def test_the_index_lists_every_shard_in_order_with_its_images(tmp_path):
    shards = [_shard(tmp_path, 0, 3, 3), _shard(tmp_path, 1, 0, 0), _shard(tmp_path, 2, 5, 5)]
    index = write_shard_index(shards, tmp_path / "shards.csv")
    assert index["n_images"].tolist() == [3, 0, 5]
    assert [tuple(map(str, shard)) for shard in read_shard_index(tmp_path / "shards.csv")] == shards


def test_a_shard_whose_rows_and_images_disagree_is_refused(tmp_path):
    shards = [_shard(tmp_path, 0, 3, 2)]
    with pytest.raises(IngestError, match="3 rows but 2 images"):
        write_shard_index(shards, tmp_path / "shards.csv")


def test_a_file_that_is_not_an_index_is_refused(tmp_path):
    (tmp_path / "other.csv").write_text("shard,rows\n0,a.parquet\n")
    with pytest.raises(IngestError, match="is not a shard index: it lacks quarantine, images, n_images"):
        read_shard_index(tmp_path / "other.csv")
