"""Counts per split (images, classes or identities, cameras): what ``dcal data`` prints and what the
parsers compare with the official sizes."""

from __future__ import annotations

from dcal.data.records import NO_CAMERA, FGVCRecord


def summarize_split(records: list) -> dict:
    """``{"images": n, "classes": k}`` for FGVC records, ``{"images": n, "ids": k, "cameras": c}`` for Re-ID
    (without ``cameras`` where no record has a camera id)."""
    if records and isinstance(records[0], FGVCRecord):
        return {"images": len(records), "classes": len({r.label for r in records})}
    if not records:
        return {"images": 0}
    cameras = {r.camid for r in records} - {NO_CAMERA}
    counts = {"images": len(records), "ids": len({r.original_pid for r in records})}
    return {**counts, "cameras": len(cameras)} if cameras else counts


def summarize(splits: dict) -> dict:
    """:func:`summarize_split` for every split, keyed by split name."""
    return {name: summarize_split(records) for name, records in splits.items()}
