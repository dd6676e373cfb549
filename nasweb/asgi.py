import gc
import os

from django.core.asgi import get_asgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nasweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from nasweb.ws_guard import WebsocketGuard  # noqa: E402
from searches.api.ws_auth import TokenAuthMiddleware  # noqa: E402
from searches.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    # session, or an API token (CLI); a bad path or Redis away is never a 500 (nasweb/ws_guard.py)
    "websocket": WebsocketGuard(AllowedHostsOriginValidator(AuthMiddlewareStack(
        TokenAuthMiddleware(URLRouter(websocket_urlpatterns))))),
})

# Start-up leaves ~280k long-lived objects (Django, the URL configuration's views, torch);
# a full garbage collection over them stalls every open websocket for ~65 ms. Load the
# views now and freeze what exists, so later collections scan only what came after.
get_resolver().url_patterns  # noqa: B018  (imports every view)
gc.collect()  # what start-up left as garbage goes now, not frozen for good
gc.freeze()
