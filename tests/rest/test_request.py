"""Pure logic of request parsing: `Prefer` as a type, the `Range` header."""
from __future__ import annotations

import pytest

from api.rest.errors import PostgrestError
from api.rest.request import Preferences, parse_preferences, parse_range_header


def test_preferences_are_typed_values() -> None:
    prefs = parse_preferences(["return=representation, count=exact", "resolution=merge-duplicates,missing=default",
                               "handling=strict, max-affected=5"])
    assert prefs == Preferences(count="exact", return_="representation", resolution="merge-duplicates",
                                missing="default", handling="strict", max_affected=5)
    assert prefs.wants_count and prefs.representation and prefs.missing_default and prefs.strict


def test_the_first_value_of_a_preference_wins_and_unknown_values_are_ignored() -> None:
    prefs = parse_preferences(["count=planned", "count=exact, return=everything, anything, tx=maybe"])
    assert prefs == Preferences(count="planned", invalid=("return=everything", "anything", "tx=maybe"))
    assert parse_preferences([]) == Preferences()
    assert parse_preferences(["resolution=merge"]).resolution is None


def test_preference_applied_lists_what_was_honoured_in_postgrest_order() -> None:
    prefs = parse_preferences(["return=minimal, count=estimated, resolution=ignore-duplicates, missing=default"])
    assert prefs.applied(read=False) == ("resolution=ignore-duplicates, missing=default, return=minimal, "
                                         "count=estimated")
    assert prefs.applied(read=True) == "count=estimated"
    assert Preferences().applied(read=False) is None and Preferences().applied(read=True) is None
    # max-affected is applied only with handling=strict
    assert parse_preferences(["max-affected=3"]).applied(read=False) is None
    assert parse_preferences(["handling=strict,max-affected=3"]).applied(read=False) == \
        "handling=strict, max-affected=3"


def test_tx_and_max_affected() -> None:
    prefs = parse_preferences(["tx=rollback, handling=strict, max-affected=0"])
    assert prefs.rollback and prefs.strict and prefs.max_affected == 0
    assert prefs.applied(read=False) == "tx=rollback, handling=strict, max-affected=0"
    assert parse_preferences(["tx=commit"]).rollback is False


@pytest.mark.parametrize("value", ["²", "①", "1²", "-1", "1.5", "", "٣"])
def test_max_affected_takes_ascii_digits_only(value: str) -> None:
    with pytest.raises(PostgrestError) as raised:
        parse_preferences([f"handling=strict, max-affected={value}"])
    assert raised.value.status == 400


def test_range_header() -> None:
    assert parse_range_header(None) == (0, None)
    assert parse_range_header("0-9") == (0, 10)
    assert parse_range_header("items=5-") == (5, None)
    for bad in ("9-0", "a-b", "5", "-5", "²-3", "0-①", "٣-4"):
        with pytest.raises(PostgrestError) as raised:
            parse_range_header(bad)
        assert raised.value.status == 416 and raised.value.code == "PGRST103"
