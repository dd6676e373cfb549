"""The data sets users bring: list and upload, one data set, delete (mounted at searches/datasets/)."""
from django.urls import path

from . import views_datasets

urlpatterns = [
    path("", views_datasets.dataset_list, name="dataset_list"),
    path("<int:dataset_id>/", views_datasets.dataset_detail, name="dataset_detail"),
    path("<int:dataset_id>/delete/", views_datasets.dataset_delete, name="dataset_delete"),
]
