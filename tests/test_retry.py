"""The retry rules of spec/apis-notes.md: what an answer means, how long to wait, when to give up.

Pure functions: no sleep, no network; randomness comes from a seeded ``random.Random``.
"""

import random

import pytest
from urllib3._collections import HTTPHeaderDict  # public as urllib3.HTTPHeaderDict only from 2.0

from playhooks._retry import DELIVERED, MAX_RETRY_AFTER, REJECTED, RETRY, Outcome, RetryPolicy, classify

HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"

# PlayFab errorCodes (spec/apis-notes.md), each with the HTTP status PlayFab answers it with.
PLAYFAB_RETRYABLE = [
    (1199, "APIClientRequestRateLimitExceeded", 429),
    (1342, "APIConcurrentRequestLimitExceeded", 429),
    (1133, "ConcurrentEditError", 409),
    (1287, "DataUpdateRateExceeded", 429),
    (1127, "DownstreamServiceUnavailable", 503),
    (1131, "InvalidAPIEndpoint", 400),
    (1214, "OverLimit", 400),
    (1123, "ServiceUnavailable", 503),
]
PLAYFAB_FINAL = [
    (1000, "InvalidParams", 400),
    (1001, "AccountNotFound", 400),
    (1071, "InvalidRequest", 400),
    (1074, "NotAuthenticated", 401),
    (1089, "NotAuthorized", 403),
    (1144, "InvalidContentType", 400),
    (1004, "InvalidTitleId", 400),
    (1135, "CharacterNotFound", 400),
    (1207, "NoWritePermissionsForEvent", 403),
]


def playfab_error(status, error_code, error, **extra):
    """A PlayFab error body, as the service sends it."""
    return dict(
        {"code": status, "status": "Error", "error": error, "errorCode": error_code, "errorMessage": f"{error} happened"},
        **extra,
    )


def playfab_cases(table):
    return [pytest.param(code, error, status, id=f"{code}-{error}") for code, error, status in table]


def seeds(count=50):
    return [random.Random(seed) for seed in range(count)]


class TestClassifyHttpStatus:
    @pytest.mark.parametrize(
        "status",
        [
            pytest.param(400, id="400-bad-request"),
            pytest.param(401, id="401-unauthorized"),
            pytest.param(403, id="403-forbidden"),
            pytest.param(404, id="404-not-found"),
            pytest.param(413, id="413-too-large"),
            pytest.param(414, id="414-uri-too-long"),
            pytest.param(422, id="422-unprocessable"),
            pytest.param(501, id="501-not-implemented"),
            pytest.param(418, id="418-another-4xx"),
            pytest.param(451, id="451-another-4xx"),
        ],
    )
    def test_never_retry_status_is_rejected(self, status):
        """A status the services say never to retry (and any 4xx not listed as retryable) is final."""
        assert REJECTED == classify(status, {}, None).kind

    @pytest.mark.parametrize(
        "status",
        [
            pytest.param(408, id="408-request-timeout"),
            pytest.param(409, id="409-conflict"),
            pytest.param(429, id="429-too-many-requests"),
            pytest.param(500, id="500-internal-error"),
            pytest.param(502, id="502-bad-gateway"),
            pytest.param(503, id="503-unavailable"),
            pytest.param(504, id="504-gateway-timeout"),
            pytest.param(507, id="507-another-5xx"),
        ],
    )
    def test_retryable_status_is_retried(self, status):
        """408, 409, 429 and the 5xx other than 501 are worth another try."""
        assert RETRY == classify(status, {}, None).kind

    @pytest.mark.parametrize("status", [200, 201, 202, 204], ids=lambda status: f"{status}")
    def test_2xx_is_delivered(self, status):
        """Any 2xx is a delivery (PlayCamp does not document which one it answers)."""
        assert Outcome(DELIVERED) == classify(status, {}, None)

    def test_playcamp_success_body_is_delivered(self):
        """PlayCamp's 201 with its data envelope is a delivery."""
        body = {"success": True, "data": {"sessionId": "session-1", "recorded": True}}

        assert DELIVERED == classify(201, {}, body).kind

    def test_playfab_success_body_is_delivered(self):
        """PlayFab's 200 with ``code: 200`` is a delivery."""
        body = {"code": 200, "status": "OK", "data": {"EventId": "e-1"}}

        assert DELIVERED == classify(200, {}, body).kind

    @pytest.mark.parametrize(
        "status, code, expected",
        [
            pytest.param(400, "VALIDATION_ERROR", REJECTED, id="400-VALIDATION_ERROR"),
            pytest.param(401, "UNAUTHORIZED", REJECTED, id="401-UNAUTHORIZED"),
            pytest.param(403, "FORBIDDEN", REJECTED, id="403-FORBIDDEN"),
            pytest.param(404, "NOT_FOUND", REJECTED, id="404-NOT_FOUND"),
            pytest.param(409, "CONFLICT", RETRY, id="409-CONFLICT"),
            pytest.param(500, "INTERNAL_ERROR", RETRY, id="500-INTERNAL_ERROR"),
        ],
    )
    @pytest.mark.parametrize("field", ["code", "errorCode"])
    def test_playcamp_error_bodies_follow_the_status(self, status, code, expected, field):
        """PlayCamp's string error codes (in ``code`` or ``errorCode``) leave the decision to the status."""
        body = {field: code, "error": "Something went wrong"}

        assert expected == classify(status, {}, body).kind

    @pytest.mark.parametrize(
        "body", [pytest.param(None, id="no-body"), pytest.param("<html>", id="text-body"), pytest.param([1], id="list-body")]
    )
    def test_a_body_that_is_not_an_object_leaves_the_status_to_decide(self, body):
        """An empty or non-JSON-object answer is judged by its status alone."""
        assert (RETRY, REJECTED) == (classify(503, {}, body).kind, classify(400, {}, body).kind)


class TestClassifyPlayFab:
    @pytest.mark.parametrize("code, error, status", playfab_cases(PLAYFAB_RETRYABLE))
    def test_retryable_error_code_is_retried(self, code, error, status):
        """Throttling and availability errorCodes are retried."""
        assert RETRY == classify(status, {}, playfab_error(status, code, error)).kind

    @pytest.mark.parametrize("code, error, status", playfab_cases(PLAYFAB_FINAL))
    def test_final_error_code_is_rejected(self, code, error, status):
        """Every other errorCode is final."""
        assert REJECTED == classify(status, {}, playfab_error(status, code, error)).kind

    @pytest.mark.parametrize("code, error, status", playfab_cases(PLAYFAB_RETRYABLE))
    def test_retryable_error_code_reported_as_success_is_retried(self, code, error, status):
        """With X-ReportErrorAsSuccess the error comes as HTTP 200; the body's ``code`` tells."""
        assert RETRY == classify(200, {}, playfab_error(status, code, error)).kind

    @pytest.mark.parametrize("code, error, status", playfab_cases(PLAYFAB_FINAL))
    def test_final_error_code_reported_as_success_is_rejected(self, code, error, status):
        """A final error inside an HTTP 200 is a refusal, not a delivery."""
        assert REJECTED == classify(200, {}, playfab_error(status, code, error)).kind

    @pytest.mark.parametrize("code", [400, 404, 429, 500, 503], ids=lambda code: f"code-{code}")
    def test_an_error_code_in_a_200_without_error_code_counts_as_the_status(self, code):
        """HTTP 200 whose body ``code`` is >= 400 is judged as that status, errorCode or not."""
        expected = classify(code, {}, None).kind

        assert expected == classify(200, {}, {"code": code, "status": "Error"}).kind

    def test_the_error_code_decides_over_a_final_status(self):
        """A retryable errorCode is retried even when it comes with a status that alone would be final."""
        assert RETRY == classify(400, {}, playfab_error(400, 1199, "APIClientRequestRateLimitExceeded")).kind

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409, 429])
    def test_a_retryable_status_wins_over_a_final_error_code(self, status):
        """A service answering 5xx (or 408, 409, 429) is struggling: retry, whatever its errorCode."""
        assert RETRY == classify(status, {}, playfab_error(status, 1110, "InternalServerError")).kind


class TestRetryAfter:
    @pytest.mark.parametrize(
        "value, expected",
        [
            pytest.param("8", 8.0, id="seconds"),
            pytest.param("1.5", 1.5, id="fractional"),
            pytest.param("0", 0.0, id="zero"),
        ],
    )
    def test_retry_after_header_in_seconds(self, value, expected):
        """``Retry-After: <seconds>`` is the wait the service asked for."""
        assert expected == classify(429, {"Retry-After": value}, None).retry_after

    def test_retry_after_header_on_a_503(self):
        """Retry-After is honoured on any retryable answer, not only 429."""
        assert 30.0 == classify(503, {"Retry-After": "30"}, None).retry_after

    def test_retry_after_header_name_is_case_insensitive_in_urllib3_headers(self):
        """The transport passes urllib3's headers, where ``retry-after`` is ``Retry-After``."""
        assert 8.0 == classify(429, HTTPHeaderDict({"retry-after": "8"}), None).retry_after

    def test_retry_after_seconds_in_the_playfab_body(self):
        """PlayFab's ``retryAfterSeconds`` gives the wait when no header does."""
        body = playfab_error(429, 1199, "APIClientRequestRateLimitExceeded", retryAfterSeconds=8)

        assert 8.0 == classify(429, {}, body).retry_after

    def test_retry_after_seconds_in_a_body_reported_as_success(self):
        """``retryAfterSeconds`` counts inside an HTTP 200 carrying a 429 too."""
        body = playfab_error(429, 1199, "APIClientRequestRateLimitExceeded", retryAfterSeconds=12)

        assert Outcome(RETRY, classify(200, {}, body).reason, 12.0) == classify(200, {}, body)

    def test_playfab_throttling_as_documented(self):
        """The documented 429 (header and body both say 8) waits 8 seconds."""
        body = playfab_error(429, 1199, "APIClientRequestRateLimitExceeded", retryAfterSeconds=8)

        outcome = classify(429, {"Retry-After": "8"}, body)

        assert (RETRY, 8.0) == (outcome.kind, outcome.retry_after)

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(HTTP_DATE, id="http-date"),
            pytest.param("soon", id="garbage"),
            pytest.param("", id="empty"),
            pytest.param("-5", id="negative"),
            pytest.param("nan", id="nan"),
        ],
    )
    def test_unusable_retry_after_header_gives_none(self, value):
        """An HTTP-date or garbage is not a number of seconds: our own back-off applies."""
        assert None is classify(429, {"Retry-After": value}, None).retry_after

    def test_unusable_header_falls_back_to_the_body(self):
        """With an HTTP-date header, PlayFab's ``retryAfterSeconds`` is still used."""
        body = playfab_error(429, 1199, "APIClientRequestRateLimitExceeded", retryAfterSeconds=5)

        assert 5.0 == classify(429, {"Retry-After": HTTP_DATE}, body).retry_after

    @pytest.mark.parametrize("value", [None, "soon", -1], ids=["null", "garbage", "negative"])
    def test_unusable_retry_after_seconds_gives_none(self, value):
        """A ``retryAfterSeconds`` that is not a non-negative number is ignored."""
        body = playfab_error(429, 1199, "APIClientRequestRateLimitExceeded", retryAfterSeconds=value)

        assert None is classify(429, {}, body).retry_after

    def test_no_retry_after_gives_none(self):
        """Without a hint, a retry has no server-given wait."""
        assert None is classify(503, {}, None).retry_after

    def test_a_refusal_carries_no_retry_after(self):
        """A final answer is not retried, whatever wait it mentions."""
        assert Outcome(REJECTED, "HTTP 400") == classify(400, {"Retry-After": "8"}, None)


class TestReason:
    def test_reason_names_the_status_and_the_playfab_error(self):
        """The reason says the HTTP status and PlayFab's error name."""
        reason = classify(429, {}, playfab_error(429, 1199, "APIClientRequestRateLimitExceeded")).reason

        assert "429" in reason
        assert "APIClientRequestRateLimitExceeded" in reason

    def test_reason_names_the_playcamp_error_and_message(self):
        """The reason says PlayCamp's code and message."""
        body = {"code": "VALIDATION_ERROR", "error": "Validation Error", "details": [{"path": "userId"}]}

        reason = classify(400, {}, body).reason

        assert "400" in reason
        assert "Validation Error" in reason

    def test_reason_of_an_error_reported_as_success_names_the_real_status(self):
        """An error inside an HTTP 200 is described by the body's status, not 200."""
        reason = classify(200, {}, playfab_error(400, 1000, "InvalidParams")).reason

        assert "HTTP 400" in reason
        assert "InvalidParams" in reason

    def test_reason_without_a_body_is_the_status(self):
        """No body: the status alone."""
        assert "HTTP 502" == classify(502, {}, None).reason

    @pytest.mark.parametrize("field", ["errorMessage", "errorDetails", "error"])
    def test_reason_is_bounded(self, field):
        """A huge message, details or error name never makes a reason longer than 500 characters."""
        body = dict(playfab_error(400, 1000, "InvalidParams"), **{field: "x" * 100_000})

        reason = classify(400, {}, body).reason

        assert len(reason) <= 500
        assert reason.startswith("HTTP 400")


class TestDelay:
    policy = RetryPolicy(base_delay=1.0, max_delay=300.0)

    @pytest.mark.parametrize("attempts", range(1, 13), ids=lambda attempts: f"attempt-{attempts}")
    def test_delay_is_within_full_jitter_bounds(self, attempts):
        """The n-th wait is anywhere in [0, base * 2**(n-1)], capped at max_delay."""
        bound = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempts - 1))

        delays = [self.policy.delay(attempts, Outcome(RETRY), rng) for rng in seeds(200)]

        assert all(0 <= delay <= bound for delay in delays)
        assert max(delays) > 0.9 * bound  # the jitter spans the range, so it is not always small
        assert min(delays) < 0.1 * bound

    def test_delay_doubles_with_each_attempt_for_the_same_draw(self):
        """With the same random draw, each attempt waits twice as long as the one before."""
        delays = [self.policy.delay(attempts, Outcome(RETRY), random.Random(7)) for attempts in range(1, 9)]

        assert [delays[0] * 2**n for n in range(8)] == delays

    @pytest.mark.parametrize("attempts", [9, 10, 25, 100, 10_000], ids=lambda attempts: f"attempt-{attempts}")
    def test_delay_never_exceeds_max_delay(self, attempts):
        """However many attempts, a wait is at most max_delay (and a huge count does not overflow)."""
        delays = [self.policy.delay(attempts, Outcome(RETRY), rng) for rng in seeds()]

        assert all(0 <= delay <= self.policy.max_delay for delay in delays)

    def test_same_seed_same_delays(self):
        """The delay depends only on its inputs and the injected random source."""
        first = [self.policy.delay(n, Outcome(RETRY), random.Random(3)) for n in range(1, 10)]
        second = [self.policy.delay(n, Outcome(RETRY), random.Random(3)) for n in range(1, 10)]

        assert first == second

    @pytest.mark.parametrize("attempts", [1, 5, 30], ids=lambda attempts: f"attempt-{attempts}")
    @pytest.mark.parametrize("retry_after", [0.0, 8.0, 120.0], ids=lambda seconds: f"retry-after-{seconds:g}")
    def test_delay_is_never_below_retry_after(self, attempts, retry_after):
        """A server's wait is honoured, plus at most base_delay of jitter."""
        outcome = Outcome(RETRY, retry_after=retry_after)

        delays = [self.policy.delay(attempts, outcome, rng) for rng in seeds()]

        assert all(retry_after <= delay <= retry_after + self.policy.base_delay for delay in delays)

    def test_retry_after_longer_than_max_delay_is_still_honoured(self):
        """A server's wait beyond max_delay wins over our own cap."""
        outcome = Outcome(RETRY, retry_after=600.0)

        delays = [self.policy.delay(3, outcome, rng) for rng in seeds()]

        assert all(600.0 <= delay <= 600.0 + self.policy.base_delay for delay in delays)

    @pytest.mark.parametrize("retry_after", [MAX_RETRY_AFTER + 1, 1e9, float("inf")], ids=["just-over", "1e9", "inf"])
    def test_huge_retry_after_is_capped(self, retry_after):
        """A server asking for more than MAX_RETRY_AFTER is not taken literally."""
        outcome = Outcome(RETRY, retry_after=retry_after)

        delays = [self.policy.delay(2, outcome, rng) for rng in seeds()]

        assert all(MAX_RETRY_AFTER <= delay <= MAX_RETRY_AFTER + self.policy.base_delay for delay in delays)

    def test_classified_infinite_retry_after_is_capped(self):
        """``Retry-After: inf`` from the wire still ends in a finite wait."""
        outcome = classify(503, {"Retry-After": "inf"}, None)

        assert self.policy.delay(1, outcome, random.Random(0)) <= MAX_RETRY_AFTER + self.policy.base_delay

    def test_delay_scales_with_base_delay(self):
        """A smaller base_delay (as in tests) makes every wait proportionally shorter."""
        fast = RetryPolicy(base_delay=0.01, max_delay=0.05)

        delays = [fast.delay(attempts, Outcome(RETRY), rng) for attempts in range(1, 20) for rng in seeds(10)]

        assert all(0 <= delay <= 0.05 for delay in delays)


class TestGivesUp:
    policy = RetryPolicy(max_attempts=5, max_age=3600.0)

    @pytest.mark.parametrize(
        "attempts, expected",
        [
            pytest.param(1, False, id="first"),
            pytest.param(4, False, id="one-before-max"),
            pytest.param(5, True, id="at-max"),
            pytest.param(6, True, id="past-max"),
        ],
    )
    def test_gives_up_at_max_attempts(self, attempts, expected):
        """After max_attempts attempts a record is given up on."""
        assert expected == self.policy.gives_up(attempts, age=0.0)

    @pytest.mark.parametrize(
        "age, expected",
        [
            pytest.param(0.0, False, id="new"),
            pytest.param(3599.0, False, id="just-younger"),
            pytest.param(3600.0, True, id="at-max-age"),
            pytest.param(86400.0, True, id="older"),
        ],
    )
    def test_gives_up_at_max_age(self, age, expected):
        """A record older than max_age is given up on, however few attempts it had."""
        assert expected == self.policy.gives_up(1, age=age)

    def test_defaults_are_25_attempts_and_7_days(self):
        """The default policy gives up after 25 attempts or a week."""
        policy = RetryPolicy()

        assert (False, True, False, True) == (
            policy.gives_up(24, 0.0),
            policy.gives_up(25, 0.0),
            policy.gives_up(1, 7 * 24 * 3600.0 - 1),
            policy.gives_up(1, 7 * 24 * 3600.0),
        )
