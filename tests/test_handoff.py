"""Hand-offs between steps (pipelines.resources.ParquetIOManager): read back as written, a row group at a time."""

from __future__ import annotations

import gc
from pathlib import Path

import pandas as pd
import pytest
from dagster import DailyPartitionsDefinition, build_init_resource_context, build_input_context

from chatpulse.pipelines.resources import ParquetIOManager

DAY = "2026-11-20"


def _load(base: Path, columns: list[str] | None) -> pd.DataFrame:
    context = build_input_context(
        asset_key="clean_requests",
        partition_key=DAY,
        asset_partitions_def=DailyPartitionsDefinition(start_date="2026-11-01"),
        definition_metadata={"columns": columns} if columns else None,
    )
    return ParquetIOManager(base_dir=str(base)).load_input(context)


@pytest.mark.parametrize("row_group_size", [2, 10])
def test_a_hand_off_reads_back_as_written_whatever_its_row_groups(tmp_path: Path, row_group_size: int) -> None:
    frame = pd.DataFrame(
        {
            "request_id": pd.Series(["r1", "r2", None, "r4", "r5"], dtype="str"),
            "user_id": pd.Series(["u2", "u1", "u2", None, "u3"], dtype="category"),
            "latency_ms": [1.5, None, 3.0, 4.0, 5.0],
        }
    )
    path = tmp_path / "clean_requests" / f"{DAY}.parquet"
    path.parent.mkdir()
    frame.to_parquet(path, index=False, row_group_size=row_group_size)
    loaded = _load(tmp_path, None)
    pd.testing.assert_frame_equal(loaded, frame, check_categorical=False)
    assert isinstance(loaded["user_id"].dtype, pd.CategoricalDtype)  # a CODED column comes back coded
    # One chunk per row group, as written: no chunk is joined to another on the way.
    assert loaded["request_id"].array.__arrow_array__().num_chunks == -(-len(frame) // row_group_size)
    pd.testing.assert_frame_equal(_load(tmp_path, ["latency_ms", "request_id"]), frame[["latency_ms", "request_id"]])


def test_what_a_run_freezes_out_of_the_collector_goes_back_at_its_end(tmp_path: Path) -> None:
    # Frozen objects that later become cyclic garbage are never collected: a process running run after run
    # (tests, `chatpulse run` over days) would keep them all.
    manager = ParquetIOManager(base_dir=str(tmp_path))
    manager.setup_for_execution(build_init_resource_context())
    assert gc.get_freeze_count() > 0
    manager.teardown_after_execution(build_init_resource_context())
    assert gc.get_freeze_count() == 0
