"""Errors of the segmentation app, each in one category of core.errors."""

from django.utils.translation import gettext_noop

from core.errors import Conflict, InvalidInput


class AsOfBeforeLatestRun(Conflict):
    code = "rfm_as_of_before_latest_run"
    message = gettext_noop("Segments were already computed as of a later date.")


class InvalidPeriod(InvalidInput):
    code = "invalid_period"
    message = gettext_noop("The period is not valid.")
