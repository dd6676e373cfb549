"""Admin: everything visible, nothing editable that would break an invariant.

State changes go through searches.services; the admin is for looking."""
from django.contrib import admin

from .models import ApiToken, Bundle, Candidate, Dataset, EpochMetric, Search, Worker


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


@admin.register(Bundle)
class BundleAdmin(ReadOnlyAdmin):
    list_display = ("id", "candidate", "state", "progress", "size", "onnx_ok", "created_at")
    list_filter = ("state",)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    # Only the prefix and a digest are stored; the key itself is shown once, to its owner.
    list_display = ("id", "owner", "name", "prefix", "created_at", "last_used_at", "revoked_at")


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ("id", "owner", "name", "kind", "state", "num_examples", "num_classes", "created_at")
    list_filter = ("kind", "state")
