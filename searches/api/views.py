"""REST endpoints. Thin: ownership through ``searches.selectors`` (another user's search is
a 404, as in the pages), writes through ``searches.services``, search settings checked
by the page's own form."""
from __future__ import annotations


from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from searches import exports, selectors, services
from searches.models import Bundle, Search

from .serializers import (BundleRequestSerializer, BundleSerializer, CandidateDetailSerializer,
                          CandidateSerializer, CloneSerializer, ErrorSerializer, SearchCreateSerializer,
                          SearchSerializer, WorkerSerializer, make_search_form)

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Not yours, or no such object.")
UNAUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No valid token or session.")
COMMON_ERRORS = {401: UNAUTHENTICATED, 403: UNAUTHENTICATED, 404: NOT_FOUND}


def _messages(exc: DjangoValidationError) -> dict:
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def exception_handler(exc, context):
    """DRF's handler, plus Django's ValidationError as a 400 with its messages and a body
    past DATA_UPLOAD_MAX_MEMORY_SIZE as a 413 (JSON, never Django's HTML page)."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(_messages(exc))
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(f"The request body is too large: the API takes at most "
                              f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.")
    return drf_exception_handler(exc, context)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is not in a state that allows this."
    default_code = "conflict"


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class BoardPagination(Pagination):
    django_paginator_class = selectors.BoardPaginator  # the last page read from the end


def _paginated(view, request, queryset, serializer_class, context=None, paginator=None):
    paginator = paginator or Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    data = serializer_class(page, many=True, context={"request": request, **(context or {})}).data
    return paginator.get_paginated_response(data)


def _file(path_text: str, filename: str, missing: str, request=None):
    from .. import storage

    return storage.download_response(path_text, filename, missing=missing, request=request)


# --- searches ------------------------------------------------------------------------

def search_form_data(data) -> dict:
    """The JSON body as the form's data: defaults for omitted fields, refusals for the rest."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object of search settings."]})
    fields = make_search_form().fields
    errors = {key: ["Unknown field."] for key in data if key not in fields}
    form_data = {}
    for name, field in fields.items():
        if name in data:
            value = data[name]
            if isinstance(value, (dict, list)):
                errors[name] = ["Expected a single value, not a list or an object."]
            form_data[name] = "" if value is None else value
        elif name != "name" and field.initial is not None and not callable(field.initial):
            form_data[name] = field.initial
    if errors:
        raise ValidationError(errors)
    return form_data


IDEMPOTENCY_KEY_MAX = 200


def idempotency_key(request) -> str:
    """The ``Idempotency-Key`` header: a create retried with the same key gets the search
    the first one made, not a second."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise ValidationError({"Idempotency-Key": [f"At most {IDEMPOTENCY_KEY_MAX} printable ASCII characters."]})
    return key


def create_search(user, data, key: str = "") -> Search:
    if key and (replay := selectors.search_by_idempotency_key(user, key)) is not None:
        return replay  # before the form: a retry is answered even if the settings changed since
    form = make_search_form(search_form_data(data), user=user)
    if not form.is_valid():
        raise ValidationError({("non_field_errors" if field == "__all__" else field): [e["message"] for e in items]
                               for field, items in form.errors.get_json_data().items()})
    try:
        return services.search_create(owner=user, idempotency_key=key, **form.service_kwargs())
    except DjangoValidationError as exc:
        raise ValidationError(_messages(exc)) from None


class SearchListView(APIView):
    @extend_schema(summary="Your searches, newest first", responses={200: SearchSerializer(many=True), **COMMON_ERRORS},
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)])
    def get(self, request):
        return _paginated(self, request, selectors.search_list_for(request.user), SearchSerializer,
                          {"with_counts": False})

    @extend_schema(summary="Start a search", request=SearchCreateSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, description=(
                       "Any unique string (a UUID): a create retried with the same key answers the "
                       "search the first one made instead of starting a second."))],
                   responses={201: SearchSerializer, 400: OpenApiResponse(
                       description="Field -> messages, as the new-search form shows them."),
                       413: OpenApiResponse(ErrorSerializer, description="The body is too large."),
                       **COMMON_ERRORS})
    def post(self, request):
        search = create_search(request.user, request.data, idempotency_key(request))
        search = selectors.search_detail_for(request.user, search.id)
        return Response(SearchSerializer(search, context={"request": request}).data, status=status.HTTP_201_CREATED)


class SearchDetailView(APIView):
    @extend_schema(summary="One search", responses={200: SearchSerializer, **COMMON_ERRORS})
    def get(self, request, search_id: int):
        search = selectors.search_detail_for(request.user, search_id)
        return Response(SearchSerializer(search, context={"request": request}).data)


class SearchActionView(APIView):
    """pause / resume / cancel: 200 with the search, 409 when its state does not allow it."""

    action_name = ""
    service = None
    allowed_from: tuple = ()
    refusal = ""

    def post(self, request, search_id: int):
        search = selectors.search_get_for(request.user, search_id)
        if search.state not in self.allowed_from:
            raise Conflict(self.refusal.format(state=search.state))
        type(self).service(search)
        search = selectors.search_detail_for(request.user, search_id)
        return Response(SearchSerializer(search, context={"request": request}).data)


_ACTION_SCHEMA = dict(request=None, responses={200: SearchSerializer, 409: ErrorSerializer, **COMMON_ERRORS})


class SearchPauseView(SearchActionView):
    service = services.search_pause
    allowed_from = tuple(Search.ACTIVE_STATES)
    refusal = "Only a queued or running search can be paused; this one is {state}."

    @extend_schema(summary="Pause: no new candidates; running ones finish", **_ACTION_SCHEMA)
    def post(self, request, search_id: int):
        return super().post(request, search_id)


class SearchResumeView(SearchActionView):
    service = services.search_resume
    allowed_from = (Search.State.PAUSED,)
    refusal = "Only a paused search can be resumed; this one is {state}."

    @extend_schema(summary="Resume a paused search", **_ACTION_SCHEMA)
    def post(self, request, search_id: int):
        return super().post(request, search_id)


class SearchCancelView(SearchActionView):
    service = services.search_cancel
    allowed_from = tuple(Search.ACTIVE_STATES) + (Search.State.PAUSED,)
    refusal = "This search has already ended ({state})."

    @extend_schema(summary="Cancel: running candidates stop at their next epoch", **_ACTION_SCHEMA)
    def post(self, request, search_id: int):
        return super().post(request, search_id)


class SearchCloneView(APIView):
    @extend_schema(summary="A new search with the same settings (and seed)", request=CloneSerializer,
                   responses={201: SearchSerializer, 400: OpenApiResponse(description="Field -> messages."),
                              **COMMON_ERRORS})
    def post(self, request, search_id: int):
        search = selectors.search_get_for(request.user, search_id)
        body = CloneSerializer(data=request.data if isinstance(request.data, dict) else None)
        body.is_valid(raise_exception=True)
        try:
            clone = services.search_clone(search, name=body.validated_data.get("name"))
        except DjangoValidationError as exc:
            raise ValidationError(_messages(exc)) from None
        clone = selectors.search_detail_for(request.user, clone.id)
        return Response(SearchSerializer(clone, context={"request": request}).data, status=status.HTTP_201_CREATED)


# --- candidates ---------------------------------------------------------------------

SORT_CHOICES = sorted(selectors.SORTS) + sorted(f"-{k}" for k in selectors.SORTS)


class CandidateListView(APIView):
    @extend_schema(
        summary="The leaderboard: candidates sorted, filtered and paged",
        parameters=[
            OpenApiParameter("sort", str, enum=SORT_CHOICES, description=f"Default {selectors.DEFAULT_SORT}; "
                             "a leading '-' sorts descending (empty values last)."),
            OpenApiParameter("state", str, many=True, enum=sorted(s.value for s in selectors.Candidate.State)),
            OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: CandidateSerializer(many=True), 400: ErrorSerializer, **COMMON_ERRORS})
    def get(self, request, search_id: int):
        search = selectors.search_get_for(request.user, search_id)
        sort = request.query_params.get("sort") or selectors.DEFAULT_SORT
        if sort.lstrip("-") not in selectors.SORTS:
            raise ValidationError({"sort": [f"Sort by one of {', '.join(SORT_CHOICES)}."]})
        states = request.query_params.getlist("state")
        unknown = [s for s in states if s not in selectors.Candidate.State.values]
        if unknown:
            raise ValidationError({"state": [f"Unknown state {unknown[0]!r}; choose from "
                                             f"{', '.join(selectors.Candidate.State.values)}."]})
        query = selectors.LeaderboardQuery(sort=sort, states=tuple(states))
        queryset = selectors.leaderboard_queryset(search, query).defer(*selectors.HEAVY_FIELDS)
        return _paginated(self, request, queryset, CandidateSerializer, paginator=BoardPagination())


class CandidateDetailView(APIView):
    @extend_schema(summary="One candidate, with its curve and bundle",
                   responses={200: CandidateDetailSerializer, **COMMON_ERRORS})
    def get(self, request, search_id: int, candidate_id: int):
        candidate = selectors.candidate_get_for(request.user, search_id, candidate_id)
        return Response(CandidateDetailSerializer(candidate, context={"request": request}).data)


class BestCandidateView(APIView):
    @extend_schema(summary="The best finished candidate", responses={200: CandidateDetailSerializer, **COMMON_ERRORS})
    def get(self, request, search_id: int):
        candidate = selectors.best_candidate_for(request.user, search_id)
        return Response(CandidateDetailSerializer(candidate, context={"request": request}).data)


_FILE = {(200, "application/octet-stream"): OpenApiTypes.BINARY, **COMMON_ERRORS}


def _checkpoint(candidate, request):
    return _file(candidate.checkpoint_path, f"search{candidate.search_id}-candidate{candidate.index}.pt",
                 "This candidate has no checkpoint.", request)


class CheckpointView(APIView):
    @extend_schema(summary="The candidate's checkpoint (torch.load(..., weights_only=True))", responses=_FILE)
    def get(self, request, search_id: int, candidate_id: int):
        return _checkpoint(selectors.candidate_get_for(request.user, search_id, candidate_id), request)


class BestCheckpointView(APIView):
    @extend_schema(summary="The best candidate's checkpoint", responses=_FILE)
    def get(self, request, search_id: int):
        return _checkpoint(selectors.best_candidate_for(request.user, search_id), request)


# --- bundles ------------------------------------------------------------------------

class BundleMixin:
    def candidate(self, request, search_id, candidate_id=None):
        if candidate_id is None:
            return selectors.best_candidate_for(request.user, search_id)
        return selectors.candidate_get_for(request.user, search_id, candidate_id)

    def status(self, request, search_id, candidate_id=None):
        candidate = self.candidate(request, search_id, candidate_id)
        bundle = selectors.bundle_of(candidate)
        if bundle is None:
            raise Http404("No bundle has been requested for this candidate yet: POST to build one.")
        bundle.candidate = candidate
        return Response(BundleSerializer(bundle, context={"request": request}).data)

    def request_build(self, request, search_id, candidate_id=None):
        candidate = self.candidate(request, search_id, candidate_id)
        body = BundleRequestSerializer(data=request.data if isinstance(request.data, dict) else None)
        body.is_valid(raise_exception=True)
        try:
            bundle = services.bundle_request(candidate, rebuild=body.validated_data["rebuild"])
        except DjangoValidationError as exc:
            raise Conflict(" ".join(exc.messages)) from None
        bundle.candidate = candidate
        code = status.HTTP_200_OK if bundle.state == Bundle.State.READY else status.HTTP_202_ACCEPTED
        return Response(BundleSerializer(bundle, context={"request": request}).data, status=code)

    def download(self, request, search_id, candidate_id=None):
        candidate = self.candidate(request, search_id, candidate_id)
        bundle, ref = selectors.ready_bundle_path(candidate)
        filename = f"search{candidate.search_id}-candidate{candidate.index}-bundle.zip"
        response = _file(ref, filename, "The bundle file is gone from the checkpoint storage.", request)
        response["Content-Type"] = "application/zip"
        response["X-Bundle-SHA256"] = bundle.sha256
        return response


_BUNDLE_STATUS = dict(responses={200: BundleSerializer, **COMMON_ERRORS})
_BUNDLE_POST = dict(request=BundleRequestSerializer, responses={
    200: OpenApiResponse(BundleSerializer, description="A current bundle is ready (cached)."),
    202: OpenApiResponse(BundleSerializer, description="Queued or building: poll GET for progress."),
    409: OpenApiResponse(ErrorSerializer, description="The candidate has not finished with a checkpoint."),
    **COMMON_ERRORS})
_ZIP = {(200, "application/zip"): OpenApiTypes.BINARY, **COMMON_ERRORS}


class BundleView(BundleMixin, APIView):
    @extend_schema(summary="The candidate's model bundle: state and progress", **_BUNDLE_STATUS)
    def get(self, request, search_id: int, candidate_id: int):
        return self.status(request, search_id, candidate_id)

    @extend_schema(summary="Build the candidate's model bundle (cached while the candidate is unchanged)",
                   **_BUNDLE_POST)
    def post(self, request, search_id: int, candidate_id: int):
        return self.request_build(request, search_id, candidate_id)


class BundleDownloadView(BundleMixin, APIView):
    @extend_schema(summary="Download the ready bundle (zip)", responses=_ZIP)
    def get(self, request, search_id: int, candidate_id: int):
        return self.download(request, search_id, candidate_id)


class BestBundleView(BundleMixin, APIView):
    @extend_schema(summary="The best candidate's model bundle: state and progress", **_BUNDLE_STATUS)
    def get(self, request, search_id: int):
        return self.status(request, search_id)

    @extend_schema(summary="Build the best candidate's model bundle", **_BUNDLE_POST)
    def post(self, request, search_id: int):
        return self.request_build(request, search_id)


class BestBundleDownloadView(BundleMixin, APIView):
    @extend_schema(summary="Download the best candidate's ready bundle (zip)", responses=_ZIP)
    def get(self, request, search_id: int):
        return self.download(request, search_id)


# --- exports and workers ---------------------------------------------------------------

class ExportView(APIView):
    kind = "candidates"
    fmt = "csv"

    def get(self, request, search_id: int):
        search = selectors.search_get_for(request.user, search_id)
        return exports.export_response(request, search, self.kind, self.fmt)


def export_view(kind: str, fmt: str):
    media = "text/csv" if fmt == "csv" else "application/json"
    what = "candidates (architecture, genotype, metrics, state, timings)" if kind == "candidates" \
        else "every epoch's metrics"
    cls = type(f"Export{kind.title()}{fmt.upper()}View", (ExportView,), {"kind": kind, "fmt": fmt})
    cls.get = extend_schema(summary=f"Export the search's {what} as {fmt.upper()}, streamed",
                            responses={(200, media): OpenApiTypes.BINARY, **COMMON_ERRORS})(cls.get)
    return cls


class WorkerListView(APIView):
    @extend_schema(summary="Training workers as last heard of",
                   responses={200: WorkerSerializer(many=True), 401: UNAUTHENTICATED, 403: UNAUTHENTICATED})
    def get(self, request):
        return Response(WorkerSerializer(selectors.worker_rows_for(request.user), many=True).data)


class MeView(APIView):
    @extend_schema(summary="Who the token or session belongs to",
                   responses={200: inline_serializer("Me", {"username": serializers.CharField(),
                                                            "token": serializers.CharField(allow_null=True)}),
                              401: UNAUTHENTICATED, 403: UNAUTHENTICATED})
    def get(self, request):
        token = request.auth if hasattr(request.auth, "prefix") else None
        return Response({"username": request.user.get_username(), "token": token.name if token else None})
