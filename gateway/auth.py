"""Who is asking, and what they may see: API tokens, page sessions, scopes.

The API takes a token only in the ``Authorization: Bearer`` header (never in a URL, where
proxies, browsers and logs keep it). Tokens are printed once, stored as their sha256, expire
(90 days unless told otherwise) and can be revoked (``xueliang token --revoke``). The operators'
pages sign in once with a token (a form at ``/ui/login``) and then carry a session cookie:
a random id, stored hashed, HttpOnly and SameSite=Strict, that ends with its token or after
``SESSION_S``. A department sees its own cases, an operator its grid subtree, an admin all.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.routing import Match

from gateway.cases import review_due
from gateway.config import Tables
from gateway.reports import centre, history, summary
from gateway.schema import CENTRE_CLOCK_MIGRATION
from gateway.storage import Store
from gateway.workflow import UNDISPATCHED, Role
from xueliang import wire
from xueliang.characters import hidden

TOKEN_LIFETIME_S = 90 * 86400
SESSION_S = 12 * 3600  # a working day and some: a page signs in again the next morning
SESSION_COOKIE = "xl_session"
PREFIX_CHARS = 11  # "xl_" and 8 random characters: enough to name a token in a revocation, useless to guess it
# a name fits a page header, and whole, after its role, in the timeline (``case_log.actor``: 128)
TOKEN_NAME_CHARS = 64


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    department: str | None = None
    grid: str | None = None


PUBLIC = Principal("public", Role.ADMIN)  # http.public_read: anyone reads everything, nobody acts


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_name_problem(name: str) -> str | None:
    r"""Why ``name`` cannot name a token, or None. A name is printed by ``token --list`` and shown in
    the pages' header and the cases' timelines: at most ``TOKEN_NAME_CHARS`` characters, no control
    characters (a terminal's escapes) and no invisible formatting ones, bidi controls above all
    (``evil\u202eabc``, a right-to-left override, reads "evilcba": one person's name can be made to
    read as another's).

    >>> token_name_problem("交警 值班 (night)"), token_name_problem("交警\u3000值班"), token_name_problem("evil\u202eabc")
    (None, None, "'evil\\u202eabc' has control or invisible formatting characters (U+202E); use letters, digits and punctuation")
    >>> token_name_problem("x" * 65)
    "'xxxxxxxxxxxxxxxxxxxx'... is 65 characters long; at most 64"
    """
    if len(name) > TOKEN_NAME_CHARS:
        return f"{name[:20]!r}... is {len(name)} characters long; at most {TOKEN_NAME_CHARS}"
    if codes := hidden(name):
        return f"{name!r} has control or invisible formatting characters ({codes}); use letters, digits and punctuation"
    return None


def new_token(store: Store, name: str, role: str, department: str | None = None, grid: str | None = None,
              lifetime_s: float = TOKEN_LIFETIME_S, now: float | None = None) -> str:
    """Make a token that expires after ``lifetime_s``, keep only its hash (and first characters), return it once.
    ValueError for a name ``token_name_problem`` refuses."""
    problem = token_name_problem(name)
    if problem:
        raise ValueError(problem)
    now = time.time() if now is None else now
    token = "xl_" + secrets.token_urlsafe(24)
    store.add_token(hash_token(token), name, Role(role).value, department, grid, now, prefix=token[:PREFIX_CHARS],
                    expires_at=now + lifetime_s)
    return token


def token_problem(row: dict, now: float) -> str | None:
    """Why a stored token opens nothing any more, or None while it is good."""
    # a person reads it (whoever set the client up): Beijing time with its offset, as `token --list` shows it
    if row["revoked_at"] is not None:
        return f"token {row['name']!r} was revoked at {wire.city_iso(row['revoked_at'])}; ask for a new one"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return f"token {row['name']!r} expired at {wire.city_iso(row['expires_at'])}; ask for a new one"
    return None


def _principal(row: dict) -> Principal:
    return Principal(row["name"], Role(row["role"]), row["department"], row["grid"])


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


# How /openapi.json says to send the token, so an OpenAPI tool (a Swagger UI of one's own, Postman,
# a generated client) sends it; reading the header and its errors stay ``bearer``'s own.
TOKEN_SCHEME = HTTPBearer(auto_error=False, scheme_name="token",
                          description="a token from `xueliang token`, as `Authorization: Bearer <token>`")
# For a route that reads a token only if one is sent (``bearer`` alone, as /health): OpenAPI's empty
# requirement, "or none", beside the token's that FastAPI writes from TOKEN_SCHEME (it appends lists)
TOKEN_OPTIONAL = {"security": [{}]}


def bearer(request: Request, _declared: object = Security(TOKEN_SCHEME)) -> Principal | None:
    """The principal of the request's ``Authorization: Bearer`` token; None without the header."""
    sent = request.headers.getlist("authorization")
    if not sent:
        return None
    if len(sent) > 1:  # RFC 9110 §5.3: a header that is no list is sent once; the first was taken, an admin's then junk
        raise HTTPException(400, f"the Authorization header is sent {len(sent)} times; send one, with one token")
    authorization = sent[0]
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must read 'Bearer <token>'")
    row = request.app.state.store.token(hash_token(token.strip()))
    if row is None:
        raise _unauthorized("unknown token")
    problem = token_problem(row, time.time())
    if problem:
        raise _unauthorized(problem)
    return _principal(row)


def _needed(request: Request, what: str) -> HTTPException:
    in_url = "; a token in the URL is not accepted" if "token" in request.query_params else ""
    return _unauthorized(f"a token is needed {what} (header Authorization: Bearer <token>){in_url}")


def reader(request: Request, who: Principal | None = Depends(bearer)) -> Principal:
    if who is not None:
        return who
    if request.app.state.public_read:
        return PUBLIC
    raise _needed(request, "to read")


def actor(request: Request, who: Principal | None = Depends(bearer)) -> Principal:
    if who is None:
        raise _needed(request, "to change a case")
    if problem := removed(who, request.app.state.tables):
        raise HTTPException(403, problem)
    return who


def removed(who: Principal, tables: Tables) -> str | None:
    """Why ``who`` may read but not act: a department taken out of the city's tables since its token was made. Its
    open cases wait for an operator to redispatch them; its feedback would start their re-check, and a re-check
    passed closes them, in the name of a department the city no longer sends work to (the token still reads: its
    people see what was theirs until it is sent on)."""
    if who.role == Role.DEPARTMENT and not tables.knows_department(who.department):
        return (f"department {who.department!r} is no longer in the city's tables: its token reads its cases but acts "
                "on none; the command centre redispatches them")
    return None


def token_optional_for_public_reads(schema: dict, routes: list) -> dict:
    """``schema`` (/openapi.json) for a gateway with ``http.public_read``: each route that reads through
    ``reader`` takes the token or none, as it does (``TOKEN_OPTIONAL``); FastAPI wrote the token as needed."""
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema and _reads_through_reader(route.dependant):
            for method in route.methods:
                operation = schema["paths"][route.path_format][method.lower()]
                if {} not in operation.setdefault("security", []):
                    operation["security"].append({})
    return schema


def _reads_through_reader(dependant: Dependant) -> bool:
    return any(d.call is reader or _reads_through_reader(d) for d in dependant.dependencies)


TOKEN_REFUSED = {"description": "no token, or one unknown, expired or revoked (`WWW-Authenticate: Bearer`): send "
                                "`Authorization: Bearer <token>` with a token from `xueliang token`"}


def refusals_described(schema: dict) -> dict:
    """``schema`` (/openapi.json) with 401 (``TOKEN_REFUSED``) on each operation that needs the token: whose
    security is the token's alone, as FastAPI writes it from ``bearer`` (and ``token_optional_for_public_reads``
    where a read takes none). A route without the token's requirement (/metrics) or with OpenAPI's empty one
    beside it (/health, the reads with ``http.public_read``) is not refused for want of a token."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            security = operation.get("security")
            if security and {} not in security:
                operation["responses"].setdefault("401", TOKEN_REFUSED)
    return schema


# --- the operators' pages: one sign-in with a token, then a session cookie ---

def start_session(store: Store, token: str, now: float) -> tuple[str, float]:
    """Exchange a token for a new session: (the cookie's value, when it ends). ValueError says why not."""
    row = store.token(hash_token(token.strip()))
    if row is None:
        raise ValueError("unknown token")
    problem = token_problem(row, now)
    if problem:
        raise ValueError(problem)
    session = secrets.token_urlsafe(32)
    expires_at = min(now + SESSION_S, row["expires_at"] or now + SESSION_S)
    store.add_session(hash_token(session), row["sha256"], now, expires_at)
    return session, expires_at


def url_origin(url: str) -> str:
    """The origin of ``url`` as a browser's ``Origin`` header writes it: scheme and host in lower case, the port
    only where it is not the scheme's default.

    >>> url_origin("https://XL.Tianjin.gov.cn:443/xl"), url_origin("http://[::1]:8080/")
    ('https://xl.tianjin.gov.cn', 'http://[::1]:8080')
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port in (None, {"http": 80, "https": 443}.get(scheme)) else f":{parts.port}"
    return f"{scheme}://{host}{port}"


def check_same_origin(request: Request) -> None:
    """403 for a sign-in or sign-out form that another site's page sent. The session cookie's
    SameSite=Strict keeps it off such a request, but the browser still stores the answer's
    Set-Cookie: another site could sign a person in as the attacker (their uploads and actions then
    go under the attacker's name) or sign them out. Browsers say where a form came from:
    ``Sec-Fetch-Site`` (only ``same-origin``, or ``none`` for the person's own navigation, passes) or,
    where they do not send that, ``Origin``: this gateway's own, as the request reached it or, behind a
    proxy that rewrites ``Host``, that of ``http.public_url`` (the request reached ``http://127.0.0.1:8080``,
    the page was ``https://xl.tianjin.gov.cn``). A request
    with neither is not a browser's form from another site (curl, scripts, the tests; browsers before
    2019 sent neither, and those are out of support), so it passes: refusing it would break them and
    protect nobody."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site not in ("same-origin", "none"):
            raise HTTPException(403, f"a form from another site (Sec-Fetch-Site: {fetch_site[:40]}) is refused")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    if request.app.state.public_url is not None:
        own.add(url_origin(request.app.state.public_url))
    if origin.lower() not in own:
        raise HTTPException(403, f"a form from another site (Origin: {origin[:200]}) is refused")


def over_https(request: Request) -> bool:
    """Whether the browser sent ``request`` from an https page: the cookie it is answered with is then
    Secure. The request's own scheme says so, or, behind a proxy that ends TLS, the ``Origin`` the
    browser names: the gateway then sees http (uvicorn takes ``X-Forwarded-Proto`` only from a proxy on
    its own machine, and nginx sends none unless told to), and a cookie not Secure would go out again in
    the clear to any http:// address of that name. Only a form ``check_same_origin`` let through
    comes here; a client that lies in ``Origin`` only changes its own cookie."""
    return request.url.scheme == "https" or request.headers.get("origin", "").lower().startswith("https://")


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie, if it names a live session of a good token."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    row = request.app.state.store.session(hash_token(cookie))
    now = time.time()
    if row is None or row["session_expires_at"] <= now or token_problem(row, now):
        return None
    return _principal(row)


SECRET_PARAMETERS = frozenset({"token", "access_token"})  # what no link a page makes carries on


def kept_query(request: Request) -> dict[str, str]:
    """The request's query parameters a page's own links keep (a list's filters), less a token someone typed into
    the address (the pages never read one there): the pager's links and the sign-in's way back copied it on, into
    more addresses, the browser's history among them.

    >>> from starlette.requests import Request
    >>> kept_query(Request({"type": "http", "query_string": b"state=dispatched&token=S3cr3t&limit=50"}))
    {'state': 'dispatched', 'limit': '50'}
    """
    return {k: v for k, v in request.query_params.items() if k not in SECRET_PARAMETERS}


def page_reader(request: Request) -> Principal:
    """For pages: the session's principal, or everyone's with public read, or off to the sign-in form."""
    who = session_principal(request)
    if who is not None:
        return who
    if request.app.state.public_read:
        return PUBLIC
    if request.method in ("GET", "HEAD"):
        query = urlencode(kept_query(request))
        here = request.url.path + (f"?{query}" if query else "")
    else:
        here = form_page(request)
    raise HTTPException(303, "sign in first", headers={"Location": f"/ui/login?next={quote(here, safe='')}"})


def form_page(request: Request) -> str:
    """Where a form sent without a live session goes back to once its person has signed in again: the nearest page
    up its path (``/ui/cases/3`` for ``/ui/cases/3/actions``; the form is not sent again). Its own path was a POST's:
    a session that ended while the case page stood open (12 hours, or signed out in another tab) led a click on
    签收 through the sign-in form to a GET there, and the person to ``{"detail":"Method Not Allowed"}``."""
    path = request.url.path
    while path.count("/") > 1:
        probe = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            return path
        path = path.rsplit("/", 1)[0]
    return "/ui/cases"


# --- scopes ---

def subtree(tables: Tables, grid: str) -> list[str]:
    return [g.code for g in tables.grids if grid in tables.ancestors(g.code)] or [grid]


def scope(who: Principal, tables: Tables) -> dict:
    """What ``who`` may see: a department its own cases once dispatched to it (not those still
    held for review or rejected before dispatch), an operator its grid subtree, an admin all."""
    if who.role == Role.DEPARTMENT:
        return {"department": who.department, "hidden_states": sorted(s.value for s in UNDISPATCHED)}
    if who.role == Role.OPERATOR:
        return {"grids": subtree(tables, who.grid or "")}
    return {}


def case_scope(who: Principal, tables: Tables) -> dict:
    """``scope`` for cases: the centre's operator (the tree's root) sees every case, those of a grid renamed or taken
    out of the tables since they opened among them (``Tables.ancestors`` puts such a grid under the centre); its
    subtree, the tree's grids, left them out: no operator saw them."""
    s = scope(who, tables)
    return {} if who.role == Role.OPERATOR and who.grid is not None and who.grid == tables.centre else s


def may_see(who: Principal, case: dict, tables: Tables) -> bool:
    """``scope``'s rule for one case, asked of every case of a report's period: an operator's grid among the case
    grid's ancestors, not the case's grid looked for in the operator's subtree, made again for each case (a city of
    5,000 grids: an operator's daily report of 2,000 cases took 12 s of CPU, an admin's 0.08 s)."""
    if who.role == Role.OPERATOR:
        return (who.grid or "") in tables.ancestors(case["grid"])
    s = scope(who, tables)  # a department's or an admin's: no grids to make
    return s.get("department") in (None, case["department"]) and case["state"] not in s.get("hidden_states", ())


def report_figures(who: Principal, store: Store, tables: Tables, start: float, end: float, now: float
                   ) -> tuple[list, dict]:
    """The cases of [start, end) ``who``'s report counts (of ``Store.cases_between``) and its figures
    (``reports.summary``), with the command centre's own (``reports.centre``; none in a department's). A
    department's: those it held in the period by the case log, and its own figures only; it read those it holds now,
    so a case it returned or that went on to another department left its report (the figures it counted for it
    kept) and one sent to it the next day showed the other department's figures."""
    rows = store.cases_between(start, end)
    if who.role != Role.DEPARTMENT:
        rows = [r for r in rows if may_see(who, r, tables)]
        due = review_due(tables, store.upgraded_at(CENTRE_CLOCK_MIGRATION))
        return rows, summary(rows, start, end, now) | {"centre": centre(rows, start, end, now, due)}
    held = [(r, h) for r in rows if (h := history(r)).held_by(who.department, start, end)]
    rows = [r for r, _ in held]
    return rows, summary(rows, start, end, now, department=who.department, histories=[h for _, h in held]) | {
        "centre": None}


def seen_cases(store: Store, tables: Tables, who: Principal, ids: Collection[int]) -> set[int]:
    """Of the cases ``ids`` (the others a case's timeline names: ``presentation.named_cases``), those ``who`` may see
    now; a case no longer kept is none of them."""
    return {n for n, row in store.cases_by_id(set(ids)).items() if may_see(who, row, tables)}


def visible_case(store: Store, tables: Tables, who: Principal, case_id: int) -> dict:
    """The case with its timeline and incidents, if ``who`` may see it; else 404 (whether it exists is not said)."""
    row = store.get_case(case_id)
    if row is None or not may_see(who, row, tables):
        raise HTTPException(404, f"no case {case_id}")
    return row


def case_filters(tables: Tables, who: Principal, *, state: str | None = None, grid: str | None = None,
                 department: str | None = None, category: str | None = None, overdue_at: float | None = None,
                 states: list[str] | None = None, located: bool = False) -> dict | None:
    """``Store.list_cases``' filters for the cases ``who`` may see that these select (None: no case
    can be): ``grid`` selects that grid and everything under it, ``category`` is an incident type
    or the city's category code, ``states`` any of those states, ``located`` those with a place (the map's)."""
    s = case_scope(who, tables)
    if s.get("department") and department not in (None, s["department"]):
        return None
    grids = s.get("grids")
    if grid is not None:  # within an operator's own: a set (a city of 35,000 grids, a list: 12 s a request)
        allowed = None if grids is None else set(grids)
        grids = [g for g in subtree(tables, grid) if allowed is None or g in allowed]
    found = tables.find_category(category) if category is not None else None
    return {"state": state, "department": s.get("department", department),
            "category": found.type if found else category, "overdue_at": overdue_at, "grids": grids,
            "hidden_states": s.get("hidden_states"), "states": states, "located": located}


# what a filter selects on, and the columns of the cases whose values it may name besides the tables' own
FILTERED = {"department": ("department",), "category": ("type",), "service_code": ("category_code",),
            "grid": ("grid",)}
SHOWN_KNOWN = 60  # values an answer lists at most (a city's categories: a hundred or so; its grids: thousands)


def unknown_filter(store: Store, tables: Tables, who: Principal, name: str, values: list[str],
                   now: float) -> str | None:
    """Why the filter ``name`` (``FILTERED``) of ``values`` can select no case ``who`` may see, naming what it takes,
    or None: a department, category or grid neither the city's tables (a grid: its tree) nor any case ``who`` may see
    names (a case keeps one taken out of the tables since). Such a filter answered [] as though no case were there; a
    value the tables lack reads the cases' values (``Store.case_values``, as of a minute ago at most). An operator
    of a street is told of its own grids alone (``outside_grids``), a department of its own department alone
    (``other_department``)."""
    if name == "department" and who.role == Role.DEPARTMENT:
        return other_department(who, values)
    if name == "grid" and street_operator(who, tables):
        return outside_grids(tables, who, values)
    if name == "grid":  # the tree's grids, thousands: read as they are kept, copied only to be listed
        if all(v in tables.parents for v in values):
            return None
        known = set(tables.parents)
    else:
        known = {"department": {d.id for d in tables.departments},
                 "category": {c.type for c in tables.categories} | {c.code for c in tables.categories},
                 "service_code": {c.code for c in tables.categories}}[name]
    if all(v in known for v in values):
        return None
    # those of the cases ``who`` may see: another street's or department's case named a department taken out of
    # the tables, or a grid, to an operator or a department that never saw it
    s = case_scope(who, tables)
    seen = {k: s[k] for k in ("department", "grids", "hidden_states") if k in s}
    for column in FILTERED[name]:
        known |= store.case_values(column, now, **seen)
    missing = [v for v in values if v not in known]
    if not missing:
        return None
    return (f"{', '.join(repr(v[:40]) for v in missing[:5])}: no {name} of the city's tables or of any case; "
            f"known: {listed(known)}")


def listed(values: set[str]) -> str:
    """``values`` sorted, ``SHOWN_KNOWN`` at most and how many more."""
    ordered = sorted(values)
    more = f" and {len(ordered) - SHOWN_KNOWN} more" if len(ordered) > SHOWN_KNOWN else ""
    return f"{', '.join(ordered[:SHOWN_KNOWN]) or 'none'}{more}"


def other_department(who: Principal, values: list[str]) -> str | None:
    """Why a department filter of ``values`` selects none of a department's cases, or None: a department other than
    its own, the same words for one the tables have as for one nobody has. It answered [], as though that department
    had no cases.

    >>> police = Principal("tp", Role.DEPARTMENT, department="traffic-police")
    >>> other_department(police, ["traffic-police"]), other_department(police, ["sanitation"])
    (None, "'sanitation': not your department (traffic-police); a department sees its own cases alone")
    """
    others = [v for v in values if v != who.department]
    if not others:
        return None
    return (f"{', '.join(repr(v[:40]) for v in others[:5])}: not your department ({who.department}); a department "
            "sees its own cases alone")


def street_operator(who: Principal, tables: Tables) -> bool:
    """Whether ``who`` sees a subtree of the grids (``case_scope``'s ``grids``), not the city: an operator below the
    centre."""
    return who.role == Role.OPERATOR and not (who.grid is not None and who.grid == tables.centre)


def outside_grids(tables: Tables, who: Principal, values: list[str]) -> str | None:
    """Why a grid filter of ``values`` selects none of the cases of a street's operator (``street_operator``), or
    None: a grid neither in its subtree nor above it (a grid above selects the operator's own). The same words for a
    grid of another street as for one nobody has, and only the operator's own listed: the 422 listed the city's every
    grid code, and whether one existed, to an operator of one street. Its subtree is made only to list it (a city of
    thousands of grids makes it once a request, for the list itself: ``subtree``)."""
    grid = who.grid or ""
    above = set(tables.ancestors(grid))
    outside = [v for v in values if v not in above and not (v in tables.parents and grid in tables.ancestors(v))]
    if not outside:
        return None
    return (f"{', '.join(repr(v[:40]) for v in outside[:5])}: not a grid of yours (operator of {who.grid}); "
            f"yours: {listed(set(subtree(tables, grid)))}")


def unknown_filters(store: Store, tables: Tables, who: Principal, now: float, **values: str | None) -> list[dict]:
    """A ``RequestValidationError``'s errors, one for each of ``values`` (a filter of ``FILTERED`` by its name, None
    where not given) that can select no case ``who`` may see (``unknown_filter``); none where each can."""
    # an operator of a street: its grid is "not yours"; a department: another department is
    scoped = {"grid": street_operator(who, tables), "department": who.role == Role.DEPARTMENT}
    return [{"type": "outside_scope" if scoped.get(name) else "unknown_value", "loc": ("query", name),
             "input": value, "msg": problem}
            for name, value in values.items()
            if value is not None and (problem := unknown_filter(store, tables, who, name, [value], now))]


def find_cases(store: Store, tables: Tables, who: Principal, *, limit: int = 100, offset: int = 0,
               urgent_at: float | None = None, before_id: int | None = None, **filters) -> list[dict]:
    """The cases ``who`` may see that the filters (``case_filters``) select, newest first or, with
    ``urgent_at``, the most urgent first (the API's list and the pages'); ``before_id``: those numbered below it."""
    selected = case_filters(tables, who, **filters)
    return [] if selected is None else store.list_cases(**selected, limit=limit, offset=offset, urgent_at=urgent_at,
                                                        before_id=before_id)


def count_found(store: Store, tables: Tables, who: Principal, **filters) -> int:
    """How many cases ``find_cases`` finds with these filters, its limit aside."""
    selected = case_filters(tables, who, **filters)
    return 0 if selected is None else store.count_cases(**selected)


# --- forms that change a case: a per-session CSRF token ---

CSRF_FIELD = "csrf"


def csrf_token(request: Request) -> str | None:
    """The hidden field a page's forms carry: derived one way from the session cookie, so it is the
    session's own (nothing to store) and nobody without the HttpOnly cookie can compute it. With the
    cookie's SameSite=Strict, another site's form reaches a page neither with the cookie nor with this."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return session_csrf(cookie) if cookie else None


def session_csrf(cookie: str) -> str:
    """The CSRF token of the session whose cookie is ``cookie``."""
    return hashlib.sha256(b"xl-csrf\x00" + cookie.encode("utf-8", "surrogatepass")).hexdigest()


def check_csrf(request: Request, sent: str | None) -> None:
    """403 unless ``sent`` is the request's session's CSRF token."""
    expected = csrf_token(request)
    if expected is None or not sent or not secrets.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
        raise HTTPException(403, "the form's CSRF token is missing or not this session's: reload the page and try again")
