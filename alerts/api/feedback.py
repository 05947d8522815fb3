"""Reps' feedback on alerts: `POST /v1/alerts/<id>/feedback` (the rep's token; from the live
page or a JSON webhook receiver), `POST /v1/slack/actions` (a Slack app's signed button
clicks) and `GET /v1/alerts/precision` (admin).

An action (`useful`, `not_useful`, `already_working`, `snooze`) is written to the events
log first (acknowledged by the broker: backtests read it), then takes effect: a rating is
counted once per alert (a new rating replaces the old), a snooze keeps the lead's or
account's alerts from the rep for 7 days at once."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Final, cast
from urllib.parse import parse_qs

from alerts import metrics
from alerts.access import Access
from alerts.event_log import EventLog, LogUnavailable
from alerts.store import ReadModel
from config.routing import Routing
from contracts import codec
from contracts.feedback import (
    ACTIONS,
    RATINGS,
    SCOPES,
    SNOOZE,
    SNOOZE_DAYS,
    Delivered,
    count_field,
    feedback_signal,
    precision,
)
from runtime.asgi import HTTPError, Send, parse_json, read_body, respond_json
from runtime.router import Request, Route

MAX_BODY: Final = 8 * 1024
# Slack refuses requests older than this; so do we (a replayed click is not a new one).
SLACK_MAX_AGE_S: Final = 300
RATING_TTL_S: Final = 90 * 86_400
# Replace the rep's previous rating of the alert, counted per kind and per rule.
_RATE: Final = """
local previous = redis.call('GET', KEYS[1])
if previous == ARGV[1] then return 0 end
for _, field in ipairs({ARGV[2], ARGV[3]}) do
  if previous then redis.call('HINCRBY', KEYS[2], field .. previous, -1) end
  redis.call('HINCRBY', KEYS[2], field .. ARGV[1], 1)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
return 1
"""


class Feedback:
    """Records reps' actions on alerts and answers precision."""

    def __init__(self, access: Access, store: ReadModel, routing: Routing, log: EventLog) -> None:
        self._access = access
        self._store = store
        self._routing = routing
        self._log = log

    def routes(self) -> list[Route]:
        """Feedback from the page or an API client, from Slack; precision."""
        return [
            Route("POST", "/v1/alerts/{alert_id}/feedback", self._from_rep),
            Route("POST", "/v1/slack/actions", self._from_slack),
            Route("GET", "/v1/alerts/precision", self._precision),
        ]

    async def _from_rep(self, request: Request, send: Send) -> None:
        rep = self._access.rep_of(self._access.token(request))
        if rep is None:
            raise HTTPError(401, "a rep's token is required (feedback is the rep's own)")
        body = parse_json(await read_body(request.scope, request.receive, MAX_BODY))
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object: {action, scope}")
        action, scope = body.get("action"), body.get("scope", "lead")
        answer = await self._record(request.params["alert_id"], rep, action, scope)
        await respond_json(send, 200, answer)

    async def _from_slack(self, request: Request, send: Send) -> None:
        secret = self._routing.slack_signing_secret
        if secret is None:
            raise HTTPError(404, "Slack actions are off: routing.toml has no [slack] table")
        raw = await read_body(request.scope, request.receive, MAX_BODY * 4)
        check_slack_signature(request, raw, secret, int(time.time()))
        try:
            payload = codec.loads(parse_qs(raw.decode())["payload"][0])
            (clicked, *_) = payload["actions"]
            alert_id, action = str(clicked["value"]), str(clicked["action_id"])
        except (KeyError, ValueError, TypeError, UnicodeDecodeError, codec.JSONDecodeError):
            raise HTTPError(400, "not a Slack block action payload") from None
        action, _, scope = action.partition(":")
        said = await self._delivered(alert_id)
        answer = await self._record(alert_id, said["rep"], action, scope or "lead", said)
        text = f"Thanks: {answer['action'].replace('_', ' ')}."
        await respond_json(send, 200, {"response_type": "ephemeral", "text": text})

    async def _record(
        self,
        alert_id: str,
        rep: str,
        action: object,
        scope: object,
        said: Delivered | None = None,
    ) -> dict[str, Any]:
        if action not in ACTIONS:
            raise HTTPError(400, f"action must be one of {list(ACTIONS)}")
        if scope not in SCOPES:
            raise HTTPError(400, f"scope must be one of {list(SCOPES)}")
        said = said or await self._delivered(alert_id)
        if said["rep"] != rep:
            raise HTTPError(403, "this alert went to another rep")
        if rep not in self._routing.reps:
            raise HTTPError(404, f"rep {rep!r} is no longer in routing.toml")
        subject = said["contact"] if scope == "lead" else said["account"]
        if action == SNOOZE and subject is None:
            raise HTTPError(400, f"this alert has no {scope} to snooze")
        now = int(time.time() * 1000)
        name = self._routing.reps[rep].name
        signal = feedback_signal(alert_id, said, name, str(action), str(scope), now)
        try:
            if signal is not None:
                await self._log.append(signal)
        except LogUnavailable as exc:
            raise HTTPError(503, str(exc), [(b"retry-after", b"2")]) from None
        client, keys = self._store.client, self._store.keys
        if action == SNOOZE:
            await client.set(
                keys.snooze(rep, str(scope), str(subject)), now, ex=SNOOZE_DAYS * 86_400
            )
        else:
            fields = [count_field("kind", said["kind"], ""), count_field("rule", said["rule"], "")]
            changed = await client.eval(
                _RATE, 2, keys.feedback(alert_id), keys.ratings, action, *fields, RATING_TTL_S
            )
            if changed:
                metrics.FEEDBACK.labels(said["kind"], said["rule"], action).inc()
        return {"alert": alert_id, "rep": rep, "action": action, "scope": scope}

    async def _delivered(self, alert_id: str) -> Delivered:
        raw = await self._store.client.get(self._store.keys.delivered(alert_id[:64]))
        if raw is None or raw == b"1":
            raise HTTPError(404, f"no delivered alert {alert_id[:64]!r} (or too old to rate)")
        return cast(Delivered, codec.loads(raw))

    async def _precision(self, request: Request, send: Send) -> None:
        self._access.require_admin(request)
        raw = cast(dict[bytes, bytes], await self._store.client.hgetall(self._store.keys.ratings))
        counts = {field.decode(): int(count) for field, count in raw.items()}
        await respond_json(send, 200, {"ratings": list(RATINGS), **precision(counts)})


def check_slack_signature(request: Request, body: bytes, secret: str, now_s: int) -> None:
    """401 unless Slack signed this body recently (`v0=` HMAC-SHA256 of `v0:<ts>:<body>`)."""
    stamp = (request.header(b"x-slack-request-timestamp") or b"").decode("latin-1")
    given = (request.header(b"x-slack-signature") or b"").decode("latin-1")
    if not stamp.isdigit() or abs(now_s - int(stamp)) > SLACK_MAX_AGE_S:
        raise HTTPError(401, "missing or stale X-Slack-Request-Timestamp")
    base = b"v0:" + stamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPError(401, "the Slack signature does not match")
