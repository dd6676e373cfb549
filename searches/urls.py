from django.urls import path

from . import views, views_compare

urlpatterns = [
    path("", views.search_list, name="search_list"),
    path("searches/new/", views.search_new, name="search_new"),
    path("searches/<int:search_id>/", views.search_detail, name="search_detail"),
    path("searches/<int:search_id>/leaderboard.json", views.search_leaderboard, name="search_leaderboard"),
    path("searches/<int:search_id>/curves.json", views.search_curves, name="search_curves"),
    path("searches/<int:search_id>/scatter.json", views.search_scatter, name="search_scatter"),
    path("searches/<int:search_id>/pause/", views.search_pause, name="search_pause"),
    path("searches/<int:search_id>/resume/", views.search_resume, name="search_resume"),
    path("searches/<int:search_id>/cancel/", views.search_cancel, name="search_cancel"),
    path("searches/<int:search_id>/delete/", views.search_delete, name="search_delete"),
    path("searches/<int:search_id>/architectures/", views.search_architectures, name="search_architectures"),
    path("searches/<int:search_id>/diff/", views.search_diff, name="search_diff"),
    path("searches/<int:search_id>/best.pt", views.best_checkpoint, name="best_checkpoint"),
    path("searches/<int:search_id>/candidates/<int:candidate_id>/", views.candidate_detail,
         name="candidate_detail"),
    path("searches/<int:search_id>/candidates/<int:candidate_id>/checkpoint.pt",
         views.candidate_checkpoint, name="candidate_checkpoint"),
    path("workers/", views.worker_list, name="worker_list"),
    path("compare/", views_compare.search_compare, name="search_compare"),
]
