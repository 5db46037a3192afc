"""Abuse control without identifiers: CSRF, and the rate limits of submissions, proposals, ballots and admin logins.

Every limit counts per client *network*, not per address: IPv4 /24 and IPv6 /64 by default
(PULSE_RATELIMIT_IPV4_PREFIX, PULSE_RATELIMIT_IPV6_PREFIX), so the neighbours of one block share
one budget instead of multiplying it. Submissions have a second, wider budget per IPv4 /16 and
IPv6 /48 (PULSE_SUBMIT_LIMIT_WIDE): one home or office holds a /56 or /48, and per-/64 budgets
alone would let it multiply its budget by 256 or more. An IPv6 address that carries an IPv4
address (::ffff:192.0.2.7, the IPv4-compatible ::192.0.2.7, 6to4 2002:c000:207::) counts as that
IPv4 address.

The limiter never sees an address or a network: its key is an HMAC of the network under a key
that changes every day (UTC), so stored counters (memory or Redis) cannot be turned back into
addresses, nor linked from one day to the next once their windows expire. A key that merely
rotated would hand out a fresh budget at midnight; so every limit counts each request twice, under
today's key and under yesterday's, and holds both: a budget spent before midnight stays spent
after it until its window ends (windows are at most a day).

The client address is the one ProxyFix takes from X-Forwarded-For when PULSE_PROXY_HOPS > 0.
That trusts whatever the proxy in front wrote there; without a proxy, a client could write it
itself, so Pulse says so in the log at start-up, and warns (log and /admin) when requests arrive
without the header.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable

from flask import Flask, current_app, g, request, session
from flask.globals import request_ctx
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect, generate_csrf

from . import keys, participants, state

log = logging.getLogger(__name__)

csrf = CSRFProtect()
# A CSRF token made for a session is put in that session's pages again for this long (it stays
# valid for WTF_CSRF_TIME_LIMIT, an hour, from when it was made): signing a fresh one cost a key
# holder's kept results page about a tenth of its time.
CSRF_TOKEN_REUSE_SECONDS = 60
# Tokens kept per worker, by the session's CSRF secret (which the browser holds in its cookie).
CSRF_TOKENS_KEPT = 1024
CSRF_TOKENS = "pulse_csrf_tokens"


_clock = time.monotonic


def csrf_token() -> str:
    """This response's CSRF token: the one made for this session's CSRF secret in the last
    minute, or a new one as Flask-WTF makes it (a session without a secret gets one)."""
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    secret = session.get(field)
    if field in g or not isinstance(secret, str):
        return generate_csrf()
    kept = current_app.extensions[CSRF_TOKENS]
    now = _clock()
    made = kept.get(secret)
    if made is not None and now - made[1] < CSRF_TOKEN_REUSE_SECONDS:
        setattr(g, field, made[0])  # where Flask-WTF keeps this request's token: one per response
        return made[0]
    token = generate_csrf()
    kept.put(secret, (token, now))
    return token


def csrf_clock() -> float:
    """The clock csrf_token() reuses tokens by (time.monotonic)."""
    return _clock()


def csrf_token_kept_until() -> float | None:
    """Until when (on csrf_clock()) csrf_token() keeps giving this session the token this
    request was given; None when that is not known (fast_reads.py replays a page only until then)."""
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    secret = session.get(field)
    made = current_app.extensions[CSRF_TOKENS].get(secret) if isinstance(secret, str) else None
    if made is None or made[0] != g.get(field):
        return None
    return made[1] + CSRF_TOKEN_REUSE_SECONDS


# The wider networks of the second submission budget: a provider's customer holds at most an IPv6 /48,
# and an IPv4 /16 is a campus or a provider's pool.
WIDE_IPV4_PREFIX = 16
WIDE_IPV6_PREFIX = 48


def client_network(address: str | None, ipv4_prefix: int = 24, ipv6_prefix: int = 64) -> str:
    """The network an address belongs to, as text ("192.0.2.0/24"); never used unhashed.

    IPv6 forms of an IPv4 address (mapped, IPv4-compatible, 6to4) count as IPv4. An address with a
    port ("192.0.2.7:5100", "[2001:db8::1]:5100", as some proxies write X-Forwarded-For) counts
    without it. Text that is no address at all is kept as it is (only a misconfigured proxy sends
    such a thing).
    """
    text = (address or "").strip()
    ip = _parse_ip(text)
    if ip is None:
        return "other:" + text
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _carried_ipv4(ip) or ip
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return ipaddress.ip_network((ip, prefix), strict=False).with_prefixlen


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: ::ffff:a.b.c.d, ::a.b.c.d (IPv4-compatible, but not
    :: or ::1), or 6to4's 2002:AABB:CCDD::/48."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if 1 < int(ip) < 1 << 32:
        return ipaddress.IPv4Address(int(ip))
    return None


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidates = [text]
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:  # v4:port
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            # A zone ("fe80::1%eth0") names the host's interface, not the client's network.
            return ipaddress.ip_address(candidate.split("%", 1)[0])
        except ValueError:
            continue
    return None


def _day_key(days_back: int = 0) -> bytes:
    day = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days_back)).isoformat()
    return _derived_day_key(str(current_app.config["SECRET_KEY"]), day)


@functools.lru_cache(maxsize=16)
def _derived_day_key(secret: str, day: str) -> bytes:
    """A day's limiter key, derived once per secret and day rather than per request and limit (a
    submission counts four times); a few days of a few secrets are kept, never an address."""
    return hmac.new(secret.encode(), f"pulse/ratelimit\0{day}".encode(), hashlib.sha256).digest()


def _hashed(network: str, days_back: int) -> str:
    return hmac.new(_day_key(days_back), network.encode(), hashlib.sha256).hexdigest()[:32]


def _network(wide: bool = False) -> str:
    config = current_app.config
    ipv4, ipv6 = config["PULSE_RATELIMIT_IPV4_PREFIX"], config["PULSE_RATELIMIT_IPV6_PREFIX"]
    if wide:
        ipv4, ipv6 = min(ipv4, WIDE_IPV4_PREFIX), min(ipv6, WIDE_IPV6_PREFIX)
    return client_network(request.remote_addr, ipv4, ipv6)


def hashed_network(days_back: int = 0) -> str:
    """The client's network as a keyed hash under today's key (or the key of `days_back` days
    ago); never the address or the network itself."""
    return _hashed(_network(), days_back)


def hashed_wide_network(days_back: int = 0) -> str:
    """The client's wider network (IPv4 /16, IPv6 /48) as a keyed hash, like hashed_network."""
    return "wide:" + _hashed(_network(wide=True), days_back)


limiter = Limiter(key_func=hashed_network, headers_enabled=False, strategy="fixed-window")


def held_across_midnight(limit, scope: str, key_func: Callable[..., str] = hashed_network, **options):
    """A shared limit counted under today's key and yesterday's, so that the key's daily rotation
    hands out no fresh budget: yesterday's counter goes on counting today until its window ends."""
    today = limiter.shared_limit(limit, scope=scope, key_func=key_func, **options)
    yesterday = limiter.shared_limit(limit, scope=scope, key_func=lambda: key_func(1), **options)

    def decorate(view):
        return today(yesterday(view))

    return decorate


def submit_limit() -> str:
    return current_app.config["PULSE_SUBMIT_LIMIT"]


def submit_limit_wide() -> str:
    return current_app.config["PULSE_SUBMIT_LIMIT_WIDE"]


_submit_network = held_across_midnight(submit_limit, "submit", methods=["POST"])
_submit_wide = held_across_midnight(submit_limit_wide, "submit-wide", hashed_wide_network, methods=["POST"])


def submit(view):
    """One budget per network and one per wider network, for the form and the API together, so
    switching channels does not double it."""
    return _submit_network(_submit_wide(view))


# Per client network (hashed): proposals and ballots, shared by the page and the API.
PROPOSE_LIMIT = "10 per hour"
BALLOT_LIMIT = "60 per hour"
# Per results key, counted in the limiter's store only (never the database), under the key's
# "proposal" hash: one key cannot flood the moderation queue from many networks.
PROPOSE_KEY_LIMIT = "5 per day"
# The form field of the topics page that carries a results key.
KEY_FIELD = "results_key"


def _proposal_limit_key(days_back: int = 0) -> str:
    key = participants.presented_key(KEY_FIELD)
    if keys.normalize(key) is None:
        return "network:" + hashed_network(days_back)
    return "key:" + participants.proposal_hash(key)


def _stored(response) -> bool:
    return response.status_code in (201, 303)


propose_limit = held_across_midnight(PROPOSE_LIMIT, "propose", methods=["POST"])
# Not held across midnight: a results key's hash does not rotate (counting it twice would halve it).
propose_key_limit = limiter.shared_limit(
    PROPOSE_KEY_LIMIT, scope="propose-key", methods=["POST"], key_func=_proposal_limit_key, deduct_when=_stored
)
ballot_limit = held_across_midnight(BALLOT_LIMIT, "ballot", methods=["POST", "PUT"])


# ------------------------------------------------------------------ the proxy in front


def trusted_proxy_message(hops: int) -> str:
    return (
        f"PULSE_PROXY_HOPS={hops}: Pulse trusts the last {hops} X-Forwarded-For "
        f"entr{'y' if hops == 1 else 'ies'} (and X-Forwarded-Proto/-Host) as the client's; rate "
        "limits count the network found there. That is right only behind that many proxies that "
        "replace the header (deploy/nginx.conf). Facing clients directly, any client could pick "
        "the address it is counted under: set PULSE_PROXY_HOPS=0 then."
    )


def unforwarded_message(hops: int) -> str:
    return (
        f"Requests are arriving without X-Forwarded-For although PULSE_PROXY_HOPS={hops}: either "
        "a proxy is missing in front of Pulse, or the setting is wrong."
    )


@functools.cache
def warn_trusted_proxy(hops: int) -> None:
    """Say once, at start-up, that PULSE_PROXY_HOPS trusts X-Forwarded-For.

    Once per process, which is what a log line is for: gunicorn forks its workers from the
    process that built the first app, so `pulse serve` says it once however many workers it starts.
    """
    if hops > 0:
        log.warning(trusted_proxy_message(hops))


def note_unforwarded() -> None:
    """A before-request hook (PULSE_PROXY_HOPS > 0): notice requests that no proxy forwarded.

    The first one is logged (no address: only that it happened) and marks this app's state, so
    /admin shows the warning; later ones cost a dictionary lookup.
    """
    if "X-Forwarded-For" in request.headers:
        return
    pulse = state.of()
    if pulse.unforwarded:
        return
    with pulse.lock:
        if pulse.unforwarded:
            return
        pulse.unforwarded = True
    log.warning(unforwarded_message(int(current_app.config["PULSE_PROXY_HOPS"])))


def proxy_warning() -> str | None:
    """The warning /admin shows when this worker has seen requests no proxy forwarded."""
    hops = int(current_app.config.get("PULSE_PROXY_HOPS") or 0)
    if hops > 0 and state.of().unforwarded:
        return unforwarded_message(hops)
    return None


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "pulse")
    csrf.init_app(app)
    app.extensions[CSRF_TOKENS] = state.LruCache(CSRF_TOKENS_KEPT)
    limiter.init_app(app)
    # Every limit Pulse sets decorates its view, and the decorator checks it. The check the
    # extension also runs before every request is for limits on the whole app or a blueprint,
    # which Pulse has none of: on a public read it was a fifth of the app's time (docs/perf).
    manager = limiter.limit_manager
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks and not (
        manager.application_limits or manager.default_limits or manager._blueprint_limits
    ):
        hooks.remove(limiter._check_request_limit)
    # Its after-request hook (deductions made only when the response says so, such as a failed
    # login) and its teardown (which forgets what a check kept) have work only in a request whose
    # view checked a limit; on the others they made the context they then reset.
    # Flask-WTF's check before every request looks for the view's exemption before it looks at
    # the method; a GET, HEAD or OPTIONS is never checked, so it is let through first.
    before = app.before_request_funcs.get(None, [])
    for i, hook in enumerate(before):
        if getattr(hook, "__name__", "") == "csrf_protect" and getattr(hook, "__module__", "") == "flask_wtf.csrf":
            before[i] = _only_for_checked_methods(hook)
    after = app.after_request_funcs.get(None, [])
    teardown = app.teardown_request_funcs.get(None, [])
    for hooks, wrap in ((after, _after_a_limit_check), (teardown, _torn_down_after_a_limit_check)):
        for i, hook in enumerate(hooks):
            if getattr(hook, "func", None) is getattr(Limiter, "_Limiter__inject_headers") or (
                getattr(hook, "__self__", None) is limiter
            ):
                hooks[i] = wrap(hook)


def checks_every_request(app: Flask) -> bool:
    """Whether Flask-Limiter checks a limit before every request of this app (an application or
    default limit in its config, RATELIMIT_APPLICATION or RATELIMIT_DEFAULT): fast_reads.py then
    leaves every request to Flask, where it is counted."""
    return limiter._check_request_limit in app.before_request_funcs.get(None, [])


def _only_for_checked_methods(hook: Callable) -> Callable:
    def csrf_protect():
        if request.method in current_app.config["WTF_CSRF_METHODS"]:
            return hook()
        return None

    return csrf_protect


# The attribute Flask-Limiter puts on a request context once a limit was checked in it.
_LIMITER_CONTEXT = "_limiter_request_context"


def _after_a_limit_check(hook: Callable) -> Callable:
    def after_request(response):
        return hook(response) if hasattr(request_ctx, _LIMITER_CONTEXT) else response

    return after_request


def _torn_down_after_a_limit_check(hook: Callable) -> Callable:
    def teardown_request(exc=None):
        if hasattr(request_ctx, _LIMITER_CONTEXT):
            hook(exc)

    return teardown_request
