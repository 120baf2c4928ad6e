"""What a region is: a two-letter code (ISO 3166-1 alpha-2, e.g. ``DE``, ``JP``), kept upper-case.

One rule for every stage that names regions: the store registers variants
under them, the localizer's titles file asks for them, and the service's
``?region=`` takes them, so a variant the store accepts is one the API can
serve. Where people type new ones (the titles file), a code must also be
assigned by ISO 3166-1 (``GB``, not ``UK``).
"""

from __future__ import annotations

import re

import pycountry

REGION_CODE = re.compile(r"[A-Za-z]{2}")


def is_region_code(text: str) -> bool:
    return REGION_CODE.fullmatch(text) is not None


def is_assigned_region(text: str) -> bool:
    """Whether ``text`` is a region code (:func:`is_region_code`) that ISO 3166-1 assigns to a country."""
    return is_region_code(text) and pycountry.countries.get(alpha_2=text.upper()) is not None


def region_list(text: str) -> list[str]:
    """The comma-separated region codes of ``text``, upper-case, as people type them for a run.

    Raises:
        ValueError: ``text`` names none, or a code ISO 3166-1 does not assign (the message names them).
    """
    regions = [region.strip().upper() for region in text.split(",") if region.strip()]
    if not regions:
        raise ValueError(f"name at least one ISO 3166-1 country code, such as DE,JP (got {text!r})")
    unknown = [region for region in regions if not is_assigned_region(region)]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} are not ISO 3166-1 country codes, such as DE,JP")
    return regions
