from django.contrib import admin
from django.contrib.auth import views as auth_views

from .auth import RateLimitedLoginView
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on every page: answer with the icon, not a 404.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True), name="favicon"),
    path("login/", RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("searches/datasets/", include("searches.urls_datasets")),
    path("", include("searches.urls")),
    path("api/", include("searches.api.urls")),
    path("", include("searches.urls_deliverables")),
]
