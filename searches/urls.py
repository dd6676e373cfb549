from django.urls import path

from . import views

urlpatterns = [
    path("", views.search_list, name="search_list"),
    path("searches/new/", views.search_new, name="search_new"),
    path("searches/<int:search_id>/", views.search_detail, name="search_detail"),
    path("searches/<int:search_id>/cancel/", views.search_cancel, name="search_cancel"),
    path("searches/<int:search_id>/best.pt", views.best_checkpoint, name="best_checkpoint"),
    path("searches/<int:search_id>/candidates/<int:candidate_id>/checkpoint.pt",
         views.candidate_checkpoint, name="candidate_checkpoint"),
]
