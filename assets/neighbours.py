"""The requests and messages of the days either side of a day that can share a session with its own
(chatpulse/behaviour/midnight.py), so a session crossing midnight is whole on the day it starts."""

from datetime import date, timedelta

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MetadataValue, Output, PartitionsDefinition, asset

from chatpulse.behaviour.midnight import neighbour_condition, neighbour_rows
from chatpulse.behaviour.sessions import EVENT_KEYS, event_keys
from chatpulse.config import Settings
from chatpulse.days import DaySpan
from chatpulse.daystate import TABLE as DAY_STEPS
from chatpulse.ingest.clean import clean_partition, derive_ids
from chatpulse.ingest.extract import empty_frame, extract_day
from chatpulse.ingest.files import ExtractError
from chatpulse.ingest.privacy import day_cache
from chatpulse.pipelines.resources import ChatPulseSettings, WarehouseResource
from chatpulse.schema import COLUMNS, SOURCE_FILE, SOURCE_LINE, Kind
from chatpulse.tables import TABLES
from chatpulse.warehouse import Warehouse

EVENT_KINDS = (Kind.REQUESTS, Kind.MESSAGES)


def _as_clean(frame: pd.DataFrame, kind: Kind) -> pd.DataFrame:
    """Rows in the columns and types of a clean frame of `kind`, whichever way they were read."""
    columns = [*COLUMNS[kind], SOURCE_FILE, SOURCE_LINE]
    return frame.reindex(columns=columns).astype(empty_frame(kind).dtypes[columns].to_dict()).reset_index(drop=True)


def _loaded(store: Warehouse, day: date, kind: Kind) -> bool:
    """Whether the warehouse holds `day`'s clean rows of `kind`: its clean step has a record."""
    steps = TABLES[DAY_STEPS]
    done = store.read_where(DAY_STEPS, (steps.c.day == day.isoformat()) & (steps.c.step == f"clean_{kind.value}"))
    return not done.empty


def _from_landing(
    settings: Settings, store: Warehouse, kind: Kind, events: pd.DataFrame, day: date, neighbour: date
) -> pd.DataFrame:
    """The rows of `neighbour` that can share a session with `events`, as its own run would store them.

    The neighbour's rows are extracted and protected as its run does it, from the extract cache where it
    holds them (chatpulse.ingest.daycache: a first run over many days parses no file again here); only
    those that can matter, and the rows sharing an id with them (cleaning keeps the first row of an id), are
    cleaned, so a whole day is never validated twice. Raises ExtractError as extract_day does.
    """
    tz, gap = settings.timezone, settings.session_gap_minutes
    cache = day_cache(settings, kind)
    frame = extract_day(
        settings.landing_dir, settings.sources, kind, neighbour, tz, store.file_stamps(kind), cache=cache
    ).frame
    if frame.empty:
        return frame
    wanted = neighbour_rows(events, frame[list(EVENT_KEYS)], day, neighbour, tz, gap)
    if not wanted.any():
        return frame.iloc[0:0]
    ids = derive_ids(frame, kind)
    wanted |= ids.isin(ids[wanted]).to_numpy()
    clean = clean_partition(frame[wanted].copy(), kind, neighbour.isoformat()).clean
    clean["timestamp"] = clean["timestamp"].dt.floor("us")  # as the warehouse stores them
    return clean[neighbour_rows(events, clean, day, neighbour, tz, gap)]


def _neighbour_asset(kind: Kind, partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=f"neighbour_{kind.value}",
        partitions_def=partitions,
        ins={
            "requests": AssetIn("clean_requests", metadata={"columns": list(EVENT_KEYS)}),
            "messages": AssetIn("clean_messages", metadata={"columns": list(EVENT_KEYS)}),
        },
        group_name="behaviour",
        kinds={"pandas", "sql"},
        description=f"The clean {kind.value} of the day before and the day after that can share a session with "
        "the day's: from the warehouse when that day's clean step has run, else from the landing files, "
        "extracted and cleaned as its run would.",
    )
    def _neighbours(
        context: AssetExecutionContext,
        requests: pd.DataFrame,
        messages: pd.DataFrame,
        chatpulse: ChatPulseSettings,
        warehouse: WarehouseResource,
    ) -> Output[pd.DataFrame]:
        settings, store = chatpulse.settings, warehouse.warehouse
        tz, gap = settings.timezone, settings.session_gap_minutes
        day = date.fromisoformat(context.partition_key)
        span = DaySpan.through_today(settings.start_date, tz)
        events = event_keys(requests, messages)
        parts: list[pd.DataFrame] = []
        read: dict[str, dict[str, object]] = {}
        for neighbour in (day - timedelta(days=1), day + timedelta(days=1)):
            never = span.where(neighbour)  # a day that cannot be run has no clean rows
            if never is not None:
                read[neighbour.isoformat()] = {"from": f"not read ({never})", "rows": 0}
                continue
            if _loaded(store, neighbour, kind):
                condition = neighbour_condition(TABLES[kind.value], day, neighbour, tz, gap)
                rows, source = store.read_where(kind.value, condition), "warehouse"
            else:
                try:
                    rows, source = _from_landing(settings, store, kind, events, day, neighbour), "landing files"
                except ExtractError as exc:  # that day's own run fails on it; this one goes on without it
                    context.log.warning(f"{kind.value} of {neighbour} not read, sessions may be cut at midnight: {exc}")
                    rows, source = empty_frame(kind), "not read (a landing file cannot be read)"
            parts.append(_as_clean(rows, kind))
            read[neighbour.isoformat()] = {"from": source, "rows": len(rows)}
        frame = pd.concat(parts, ignore_index=True) if parts else _as_clean(empty_frame(kind), kind)
        return Output(frame, metadata={"rows": len(frame), "days": MetadataValue.json(read)})

    return _neighbours


def next_day_ratings(settings: Settings, store: Warehouse, day: date) -> pd.DataFrame:
    """The clean ratings of the day after `day` (a thumbs-down the next morning rates a session of `day`):
    from the warehouse when that day's clean step has run, else from its landing files, extracted (and
    protected) and cleaned as its run would; none when that day cannot be run. The sessions step keeps those
    that rate one of its sessions. Raises ExtractError as extract_day does."""
    later = day + timedelta(days=1)
    if DaySpan.through_today(settings.start_date, settings.timezone).where(later) is not None:
        return _as_clean(empty_frame(Kind.FEEDBACK), Kind.FEEDBACK)
    if _loaded(store, later, Kind.FEEDBACK):
        return _as_clean(store.read(Kind.FEEDBACK.value, later.isoformat()), Kind.FEEDBACK)
    frame = extract_day(
        settings.landing_dir,
        settings.sources,
        Kind.FEEDBACK,
        later,
        settings.timezone,
        store.file_stamps(Kind.FEEDBACK),
        cache=day_cache(settings, Kind.FEEDBACK),
    ).frame
    if frame.empty:
        return _as_clean(frame, Kind.FEEDBACK)
    return _as_clean(clean_partition(frame, Kind.FEEDBACK, later.isoformat()).clean, Kind.FEEDBACK)


def neighbour_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    """neighbour_requests and neighbour_messages over one partitions definition."""
    return [_neighbour_asset(kind, partitions) for kind in EVENT_KINDS]
