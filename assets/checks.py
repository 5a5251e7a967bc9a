"""Asset checks that belong to a day: every check of the pipeline is declared here, with its day.

Without a partitions definition Dagster 1.13 records a check's result with no partition (only the
planned evaluation names the day), so the UI's check status is whichever day ran last and an earlier
day's failure is hidden behind a later "Passed". With the asset's own daily partitions each result is
the result of its day: the UI shows the check per partition, and a day's failure stays on that day.
"""

import warnings
from collections.abc import Iterable

from dagster import AssetCheckSpec, PartitionsDefinition, PreviewWarning


def day_check(
    name: str,
    asset: str,
    partitions: PartitionsDefinition,
    description: str,
    additional_deps: Iterable[str] = (),
) -> AssetCheckSpec:
    """The spec of check ``name`` on ``asset`` (an asset name) with one result per day of ``partitions``.

    ``partitions`` must be the asset's own (Dagster requires it); ``additional_deps`` are other assets the
    check reads.
    """
    with warnings.catch_warnings():
        # Checks with a partition each are a preview in Dagster 1.13; a verdict per day is the point here.
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(
            name,
            asset=asset,
            partitions_def=partitions,
            additional_deps=list(additional_deps),
            description=description,
        )
