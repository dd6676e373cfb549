"""Admin: everything visible, nothing editable that would break an invariant.

State changes go through searches.services; the admin is for looking."""
from django.contrib import admin

from .models import Candidate, EpochMetric, Search, Worker


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Search)
class SearchAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "owner", "dataset", "space", "strategy", "state", "created_at")
    list_filter = ("state", "dataset", "space", "strategy")
    search_fields = ("name", "owner__username")


@admin.register(Candidate)
class CandidateAdmin(ReadOnlyAdmin):
    list_display = ("id", "search", "index", "genotype", "state", "best_val_accuracy", "test_accuracy", "worker")
    list_filter = ("state",)
    list_select_related = ("search",)


@admin.register(EpochMetric)
class EpochMetricAdmin(ReadOnlyAdmin):
    list_display = ("id", "search", "candidate", "epoch", "val_accuracy", "seq")
    list_select_related = ("search", "candidate")


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ("name", "host", "device", "candidate", "last_heartbeat", "epochs_done")
