"""The generated bindings name every public code of the core and every progress kind: the DPS
codes are their own `FieldlinkError` cases (not `Other`), shaped like the others, and
`ProgressKind.SERVICE_RETRY` carries the API client's retry counts."""

import pytest

import fieldlink_mobile as fm

FIELDS = {"code", "reason", "retryable", "retry_after_ms", "details_json"}

DPS_CASES = [
    ("DpsUnreachable", "dps_unreachable", True),
    ("DpsThrottled", "dps_throttled", True),
    ("DpsUnauthorized", "dps_unauthorized", False),
    ("DpsNotFound", "dps_not_found", False),
]


@pytest.mark.parametrize("case,code,retryable", DPS_CASES)
def test_dps_codes_are_their_own_cases_with_the_common_fields(case, code, retryable):
    variant = getattr(fm.FieldlinkError, case)
    assert issubclass(variant, fm.FieldlinkError)
    assert variant is not fm.FieldlinkError.Other
    error = variant(
        code=code,
        reason="DPS said no",
        retryable=retryable,
        retry_after_ms=None,
        details_json='{"dps": {"status": "failed"}}',
    )
    assert {field: getattr(error, field) for field in FIELDS} == {
        "code": code,
        "reason": "DPS said no",
        "retryable": retryable,
        "retry_after_ms": None,
        "details_json": '{"dps": {"status": "failed"}}',
    }
    with pytest.raises(fm.FieldlinkError):
        raise error


def test_service_retry_is_a_progress_kind_with_the_retry_counts():
    kind = fm.ProgressKind.SERVICE_RETRY(
        attempt=2, max_attempts=5, wait_ms=1200, retry_after_ms=1000, reason="http_503"
    )
    assert (kind.attempt, kind.max_attempts, kind.wait_ms, kind.retry_after_ms, kind.reason) == (
        2,
        5,
        1200,
        1000,
        "http_503",
    )
    event = fm.ProgressEvent(step=fm.Step.AWAITING_ASSIGNMENT, kind=kind, at_ms=40, attempt=1)
    assert isinstance(event.kind, fm.ProgressKind.SERVICE_RETRY)
