from django.contrib import admin
from django.contrib.auth import views as auth_views

from .auth import RateLimitedLoginView
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("searches/datasets/", include("searches.urls_datasets")),
    path("", include("searches.urls")),
    path("api/", include("searches.api.urls")),
    path("", include("searches.urls_deliverables")),
]
