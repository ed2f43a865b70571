"""Errors of the segmentation app, each in one category of core.errors."""

from core.errors import Conflict, InvalidInput


class AsOfBeforeLatestRun(Conflict):
    code = "rfm_as_of_before_latest_run"
    message = "Segments were already computed as of a later date."


class InvalidPeriod(InvalidInput):
    code = "invalid_period"
    message = "The period is not valid."
