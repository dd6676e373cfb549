from django.urls import path

from . import views_deliverables as views

C = "searches/<int:search_id>/candidates/<int:candidate_id>/"

urlpatterns = [
    path(C + "bundle/", views.bundle_request, name="bundle_request"),
    path(C + "bundle/status.json", views.bundle_status, name="bundle_status"),
    path(C + "bundle.zip", views.bundle_download, name="bundle_download"),
    path("searches/<int:search_id>/best/bundle/", views.best_bundle_request, name="best_bundle_request"),
    path("searches/<int:search_id>/export/<str:kind>.<str:fmt>", views.search_export, name="search_export"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
