"""A login form and a cart, written the way Django apps are: `request.session`, the key
cycled at login, a login-required redirect, and CSRF-protected forms.

`django.contrib.auth` needs a database for its users; this app keeps only a user name,
so it does what `auth.login()` does to the session by hand (`cycle_key()` and a new CSRF
token) and redirects like `@login_required`.
"""

import functools

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.middleware.csrf import get_token, rotate_token
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

USER_KEY = "user"


def page(title, body):
    return HttpResponse(
        f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n{body}\n",
        content_type="text/html; charset=utf-8",
    )


def csrf_field(request):
    token = escape(get_token(request))
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'


def login_required(view):
    """Like `django.contrib.auth.decorators.login_required`: an anonymous session is
    sent to `LOGIN_URL?next=<this page>` with a 302."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if USER_KEY not in request.session:
            query = QueryDict(mutable=True)
            query["next"] = request.get_full_path()
            return HttpResponseRedirect(f"{settings.LOGIN_URL}?{query.urlencode(safe='/')}")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
def healthz(request):
    if settings.MODE == "redis":
        from django_redis import get_redis_connection

        try:
            get_redis_connection("default").ping()
        except Exception:
            return HttpResponse("store unreachable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


@require_http_methods(["GET", "POST"])
def login(request):
    next_url = request.POST.get("next") or request.GET.get("next") or "/cart/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/cart/"
    username = request.POST.get("username", "").strip()
    if request.method == "POST" and username:
        # What django.contrib.auth.login() does to the session: a new key (no session
        # fixation), the user stored, and a new CSRF token.
        request.session.cycle_key()
        request.session[USER_KEY] = username
        rotate_token(request)
        return HttpResponseRedirect(next_url)
    return page(
        "Log in",
        f'<form method="post" action="/accounts/login/">{csrf_field(request)}'
        f'<input name="username"><input type="hidden" name="next" value="{escape(next_url)}">'
        '<button>Log in</button></form>',
    )


@require_GET
@login_required
def cart(request):
    items = "".join(f"<li>{escape(item)}</li>" for item in request.session.get("items", []))
    return page(
        f"Cart of {escape(request.session[USER_KEY])}",
        f"<ul>{items}</ul>\n"
        f'<form method="post" action="/cart/add/">{csrf_field(request)}'
        '<input name="op"><input name="item"><button>Add</button></form>',
    )


@require_POST
@login_required
def add(request):
    op = request.POST.get("op", "")
    item = request.POST.get("item", "")
    if not op or not item:
        return HttpResponse("op and item are required\n", status=400, content_type="text/plain")
    # Idempotent by op id: a form resent after a lost answer adds the item once.
    done = request.session.get("ops", [])
    if op not in done:
        request.session["ops"] = done + [op]
        request.session["items"] = request.session.get("items", []) + [item]
    return HttpResponseRedirect("/cart/")
