"""What the API returns, and the documented shape of what it accepts.

Searches are created through ``searches.forms.SearchForm`` (the same checks
and messages as the page); ``SearchCreateSerializer`` is generated from that
form's fields so that the schema follows the form.
"""
from __future__ import annotations

import inspect

from django import forms
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from searches import selectors
from searches.forms import SearchForm
from searches.models import ApiToken, Bundle, Candidate, EpochMetric, Search


def make_search_form(data=None, *, user=None) -> SearchForm:
    """The page's form, told who the user is when it wants to know (warm-start choices)."""
    if "user" in inspect.signature(SearchForm.__init__).parameters:
        return SearchForm(data, user=user)
    return SearchForm(data)


def _number_kwargs(field) -> dict:
    kwargs = {}
    if getattr(field, "min_value", None) is not None:
        kwargs["min_value"] = field.min_value
    if getattr(field, "max_value", None) is not None:
        kwargs["max_value"] = field.max_value
    return kwargs


def serializer_field_for(name: str, field: forms.Field, live_choices=None) -> serializers.Field:
    """A serializer field documenting one form field (the form does the checking).

    A choice field whose choices the form sets per request (data sets include the user's
    uploads) is documented as a string, with today's choices in its description."""
    help_text = " — ".join(str(t) for t in (field.label or "", field.help_text or "") if t).strip()
    if live_choices:
        help_text = f"{help_text}. One of: {', '.join(map(str, live_choices))}".lstrip(". ")
    help_text = help_text or None
    common = {"required": name == "name", "help_text": help_text}
    if field.initial is not None and name != "name" and not callable(field.initial):
        common["default"] = field.initial
    if not field.required:
        common["allow_null"] = True
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(**common)
    if isinstance(field, (forms.FloatField, forms.DecimalField)):  # before IntegerField: their base class
        return serializers.FloatField(**common, **_number_kwargs(field))
    if isinstance(field, forms.IntegerField):
        return serializers.IntegerField(**common, **_number_kwargs(field))
    if isinstance(field, forms.BooleanField):
        return serializers.BooleanField(**common)
    if isinstance(field, forms.ChoiceField) and list(field.choices):
        choices = [c for c, _ in field.choices if c != ""]
        return serializers.ChoiceField(choices=choices, **common)
    if isinstance(field, forms.ChoiceField):
        return serializers.CharField(**common)
    kwargs = {"max_length": field.max_length} if getattr(field, "max_length", None) else {}
    return serializers.CharField(allow_blank=not field.required, **common, **kwargs)


def _search_create_serializer():
    try:
        live = make_search_form().fields
    except Exception:  # noqa: BLE001 - e.g. no database yet: the schema then lists no choices
        live = {}
    attrs = {}
    for name, field in SearchForm.base_fields.items():
        choices = None
        if isinstance(field, forms.ChoiceField) and not list(field.choices) and name in live:
            choices = [c for c, _ in live[name].choices if c != ""]
        attrs[name] = serializer_field_for(name, field, choices)
    attrs["__doc__"] = ("The settings of a new search: the fields of the new-search form, with the same "
                        "limits and messages. Omitted fields take the form's default; `name` is required.")
    return type("SearchCreateSerializer", (serializers.Serializer,), attrs)


SearchCreateSerializer = _search_create_serializer()


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200,
                                 help_text="The new search's name (default: the original's name + ' (copy)').")


class BundleRequestSerializer(serializers.Serializer):
    rebuild = serializers.BooleanField(required=False, default=False,
                                       help_text="Build again even when a current bundle is ready.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class SearchSerializer(serializers.ModelSerializer):
    done = serializers.SerializerMethodField(help_text="Candidates that ended (finished, failed, pruned, cancelled).")
    best_accuracy = serializers.SerializerMethodField(help_text="Best validation accuracy so far.")
    counts = serializers.SerializerMethodField(help_text="Candidates per state.")
    warm_start = serializers.PrimaryKeyRelatedField(read_only=True)
    seed = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField(help_text="The search's page.")

    class Meta:
        model = Search
        fields = ["id", "name", "state", "error", "task", "dataset", "space", "space_settings", "strategy",
                  "strategy_settings", "max_candidates", "epochs", "parallel", "objective", "objectives",
                  "early_stopping", "early_stopping_settings", "warm_start", "train_settings", "seed",
                  "done", "best_accuracy", "counts", "created_at", "started_at", "finished_at", "url"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.INT)
    def get_done(self, search):
        return selectors.search_done_count(search)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_best_accuracy(self, search):
        return selectors.search_best_accuracy(search)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts(self, search):
        if not self.context.get("with_counts", True):
            return None
        return selectors.state_counts(search.id)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, search):
        request = self.context.get("request")
        path = search.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class CandidateSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    has_checkpoint = serializers.SerializerMethodField()

    class Meta:
        model = Candidate
        fields = ["id", "index", "state", "kind", "genotype", "arch", "param_count", "flops", "latency_ms",
                  "on_pareto_front", "epochs_done", "best_val_accuracy", "final_val_accuracy", "test_accuracy",
                  "test_macro_recall", "test_macro_f1", "stop_reason", "worker", "device", "created_at",
                  "started_at", "finished_at", "duration_seconds", "has_checkpoint"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_has_checkpoint(self, candidate):
        return bool(candidate.checkpoint_path)


class EpochSerializer(serializers.ModelSerializer):
    class Meta:
        model = EpochMetric
        fields = ["epoch", "seq", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds",
                  "created_at"]
        read_only_fields = fields


class BundleSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(
        help_text="Built from the candidate's present checkpoint; a stale bundle is rebuilt on request.")
    download_url = serializers.SerializerMethodField(help_text="Set when the bundle is ready and current.")

    class Meta:
        model = Bundle
        fields = ["state", "progress", "message", "error", "attempt", "current", "checkpoint_sha256", "size",
                  "sha256", "standalone_ok", "standalone_error", "onnx_ok", "onnx_error", "onnx_max_diff",
                  "float_size", "float_accuracy", "int8_size", "int8_accuracy", "int8_error", "details",
                  "created_at", "updated_at", "started_at", "finished_at", "download_url"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_current(self, bundle):
        return bundle.is_current

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_download_url(self, bundle):
        if bundle.state != Bundle.State.READY or not bundle.is_current:
            return None
        candidate = bundle.candidate
        path = reverse("api-bundle-download", args=[candidate.search_id, candidate.id])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class CandidateDetailSerializer(CandidateSerializer):
    curve = serializers.SerializerMethodField(help_text="Every epoch's metrics, in order.")
    bundle = serializers.SerializerMethodField()

    class Meta(CandidateSerializer.Meta):
        fields = CandidateSerializer.Meta.fields + ["error", "confusion_matrix", "extra", "checkpoint_size",
                                                    "checkpoint_sha256", "curve", "bundle"]
        read_only_fields = fields

    @extend_schema_field(EpochSerializer(many=True))
    def get_curve(self, candidate):
        return EpochSerializer(selectors.candidate_epochs(candidate), many=True).data

    @extend_schema_field(BundleSerializer(allow_null=True))
    def get_bundle(self, candidate):
        bundle = selectors.bundle_of(candidate)
        if bundle is None:
            return None
        bundle.candidate = candidate
        return BundleSerializer(bundle, context=self.context).data


class WorkerCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    index = serializers.IntegerField()
    search_id = serializers.IntegerField()
    search_name = serializers.CharField()
    url = serializers.CharField()


class WorkerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    host = serializers.CharField()
    device = serializers.CharField()
    last_heartbeat = serializers.DateTimeField()
    seconds_since_heartbeat = serializers.FloatField()
    lost = serializers.BooleanField()
    epochs_done = serializers.IntegerField()
    samples_per_second = serializers.FloatField(allow_null=True)
    busy = serializers.BooleanField()
    candidate = WorkerCandidateSerializer(allow_null=True,
                                          help_text="Named only when the candidate is one of yours.")


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields
