"""/api/…: every route here is covered by tests/searches/api/test_api_access.py (owner,
another user, anonymous); a route missing there fails that suite."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

S = "searches/<int:search_id>/"
C = S + "candidates/<int:candidate_id>/"

urlpatterns = [
    path("me/", views.MeView.as_view(), name="api-me"),
    path("searches/", views.SearchListView.as_view(), name="api-search-list"),
    path(S, views.SearchDetailView.as_view(), name="api-search-detail"),
    path(S + "pause/", views.SearchPauseView.as_view(), name="api-search-pause"),
    path(S + "resume/", views.SearchResumeView.as_view(), name="api-search-resume"),
    path(S + "cancel/", views.SearchCancelView.as_view(), name="api-search-cancel"),
    path(S + "clone/", views.SearchCloneView.as_view(), name="api-search-clone"),
    path(S + "candidates/", views.CandidateListView.as_view(), name="api-candidate-list"),
    path(C, views.CandidateDetailView.as_view(), name="api-candidate-detail"),
    path(C + "checkpoint/", views.CheckpointView.as_view(), name="api-checkpoint"),
    path(C + "bundle/", views.BundleView.as_view(), name="api-bundle"),
    path(C + "bundle/download/", views.BundleDownloadView.as_view(), name="api-bundle-download"),
    path(S + "best/", views.BestCandidateView.as_view(), name="api-best"),
    path(S + "best/checkpoint/", views.BestCheckpointView.as_view(), name="api-best-checkpoint"),
    path(S + "best/bundle/", views.BestBundleView.as_view(), name="api-best-bundle"),
    path(S + "best/bundle/download/", views.BestBundleDownloadView.as_view(), name="api-best-bundle-download"),
    path(S + "export/candidates.csv", views.export_view("candidates", "csv").as_view(),
         name="api-export-candidates-csv"),
    path(S + "export/candidates.json", views.export_view("candidates", "json").as_view(),
         name="api-export-candidates-json"),
    path(S + "export/epochs.csv", views.export_view("epochs", "csv").as_view(), name="api-export-epochs-csv"),
    path(S + "export/epochs.json", views.export_view("epochs", "json").as_view(), name="api-export-epochs-json"),
    path("workers/", views.WorkerListView.as_view(), name="api-worker-list"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
