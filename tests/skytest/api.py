"""HTTP to the daemons (controllers, the local cloud, agents) and to what they
serve. Every URL here is loopback or a local-cloud address: no request goes
through a proxy from the environment."""
import http.client
import json
import urllib.error
import urllib.request

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(req, timeout):
    return _OPENER.open(req, timeout=timeout)


def _decode(raw, ctype):
    """A JSON reply's document; the bytes of any other reply, or of one that
    is not valid JSON after all; None when the body is empty."""
    if not raw:
        return None
    if "json" not in (ctype or ""):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def request(method, url, token=None, body=None, timeout=30, raw=None):
    """One request: <body> sent as JSON (or <raw> bytes as they are), the
    bearer <token> when given. Returns (status, doc): doc is the reply's JSON
    document, or its bytes when it is not JSON (an error test then sees
    exactly what came, e.g. a stray NUL after the object), or None when
    it is empty.
    Transport errors (refused, timeout) raise OSError."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urlopen(req, timeout) as r:
            return r.status, _decode(r.read(), r.headers.get("Content-Type"))
    except urllib.error.HTTPError as e:
        return e.code, _decode(e.read(), e.headers.get("Content-Type"))


def get(url, timeout=10):
    """(status, text) of one GET; status is an error text ("URLError: ...")
    when no reply came, so that a caller can compare it with 200 either way."""
    try:
        with urlopen(url, timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return "%s: %s" % (type(e).__name__, e), ""
