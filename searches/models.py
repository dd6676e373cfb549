"""The domain in Postgres. Rows change only through ``searches.services``."""
from django.conf import settings
from django.db import models
from django.urls import reverse


class Search(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    ENDED_STATES = (State.FINISHED, State.FAILED, State.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="searches")
    name = models.CharField(max_length=200)
    task = models.CharField(max_length=40, default="image-classification")
    dataset = models.CharField(max_length=40)
    space = models.CharField(max_length=40)
    space_settings = models.JSONField(default=dict, blank=True)
    strategy = models.CharField(max_length=40)
    strategy_settings = models.JSONField(default=dict, blank=True)
    max_candidates = models.PositiveIntegerField()
    epochs = models.PositiveIntegerField()
    parallel = models.PositiveIntegerField(default=1)
    objective = models.CharField(max_length=40, default="val_accuracy")
    # Several objectives, e.g. [{"metric": "val_accuracy", "direction": "max"},
    # {"metric": "params", "direction": "min"}]; empty means the single objective above.
    objectives = models.JSONField(default=list, blank=True)
    early_stopping = models.CharField(max_length=40, default="none")
    early_stopping_settings = models.JSONField(default=dict, blank=True)
    warm_start = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="warm_started")
    train_settings = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    # Last sequence number handed to an event of this search; bumped under the row lock.
    last_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The API client's Idempotency-Key of the create that made it: a retried create
    # with the same key gets this search back instead of a second one.
    idempotency_key = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        constraints = [models.UniqueConstraint(fields=["owner", "idempotency_key"],
                                               condition=~models.Q(idempotency_key=""),
                                               name="search_unique_idempotency_key")]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    def get_absolute_url(self):
        return reverse("search_detail", args=[self.pk])

    @property
    def url(self):
        return self.get_absolute_url()


class Candidate(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        PRUNED = "pruned"
        CANCELLED = "cancelled"

    BUSY_STATES = (State.QUEUED, State.RUNNING)
    ENDED_STATES = (State.FINISHED, State.FAILED, State.PRUNED, State.CANCELLED)

    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="candidates")
    index = models.PositiveIntegerField()
    arch = models.JSONField()
    arch_hash = models.CharField(max_length=64)
    genotype = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED, db_index=True)
    worker = models.CharField(max_length=200, blank=True)
    # Bumped by every claim: the claim's identity. Every write of a training run (epochs,
    # end, checkpoint name) names its attempt, so a run that was taken back and wakes up
    # later cannot touch the work of the run that replaced it, even on a worker of the same name.
    attempt = models.PositiveIntegerField(default=0)
    device = models.CharField(max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When its training task was last sent; a queued candidate whose message a
    # broker restart lost is sent again once this is old (see the reaper).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    param_count = models.BigIntegerField(null=True, blank=True)
    flops = models.BigIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    on_pareto_front = models.BooleanField(default=False)
    # Why a candidate ended early (pruned by a rule, cancelled), in words.
    stop_reason = models.CharField(max_length=500, blank=True)
    # What ran: an ordinary candidate, or a one-shot job (DARTS, supernet) that reports like one.
    kind = models.CharField(max_length=20, default="train")
    extra = models.JSONField(default=dict, blank=True)
    epochs_done = models.PositiveIntegerField(default=0)
    best_val_accuracy = models.FloatField(null=True, blank=True)
    final_val_accuracy = models.FloatField(null=True, blank=True)
    test_accuracy = models.FloatField(null=True, blank=True)
    test_macro_recall = models.FloatField(null=True, blank=True)
    test_macro_f1 = models.FloatField(null=True, blank=True)
    confusion_matrix = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    checkpoint_size = models.BigIntegerField(null=True, blank=True)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["search", "index"]
        constraints = [
            models.UniqueConstraint(fields=["search", "index"], name="candidate_unique_index"),
            models.UniqueConstraint(fields=["search", "arch_hash"], name="candidate_unique_arch"),
        ]
        # One index per leaderboard sort, so every sort at 50,000 candidates reads one page.
        indexes = [models.Index(fields=["search", "-best_val_accuracy"]),
                   models.Index(fields=["search", "param_count"]),
                   models.Index(fields=["search", "flops"]),
                   models.Index(fields=["search", "latency_ms"]),
                   models.Index(fields=["search", "-test_accuracy"]),
                   models.Index(fields=["search", "-epochs_done"]),
                   models.Index(fields=["search", "state"]),
                   models.Index(fields=["state", "heartbeat_at"]),
                   # The Pareto scatter of each cost reads one search's finished rows from its
                   # own index alone, already in the order its front sweep needs (cheapest first,
                   # the most accurate first among equal costs): no heap, no sort.
                   *[models.Index(fields=["search", "state", column, "-best_val_accuracy"],
                                  include=["id", "index", "on_pareto_front"], name=f"candidate_scatter_{column}")
                     for column in ("param_count", "flops", "latency_ms")]]

    def __str__(self):
        return f"candidate {self.index} of search {self.search_id}"

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class EpochMetric(models.Model):
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="epoch_metrics")
    # Denormalised so "everything after sequence N" is one indexed range scan.
    search = models.ForeignKey(Search, on_delete=models.CASCADE, related_name="epoch_metrics")
    epoch = models.PositiveIntegerField()
    train_loss = models.FloatField()
    train_accuracy = models.FloatField()
    val_loss = models.FloatField()
    val_accuracy = models.FloatField()
    seconds = models.FloatField()
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["search", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["candidate", "epoch"], name="epoch_unique_per_candidate"),
            models.UniqueConstraint(fields=["search", "seq"], name="epoch_unique_seq"),
        ]


class CandidateLog(models.Model):
    """A chunk of a candidate's training log (worker log lines, stdout/stderr), appended in
    bounded chunks so a reload shows it again; ``first_line`` numbers its first line (from 1)."""
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="log_chunks")
    first_line = models.PositiveIntegerField()
    line_count = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["candidate", "first_line"]
        constraints = [models.UniqueConstraint(fields=["candidate", "first_line"], name="log_chunk_unique_start")]


class Worker(models.Model):
    """A Celery training worker as last heard of (heartbeats come from the worker itself)."""

    name = models.CharField(max_length=200, unique=True)  # Celery hostname, e.g. gpu0@host
    host = models.CharField(max_length=200)
    device = models.CharField(max_length=200, blank=True)
    candidate = models.ForeignKey(Candidate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_heartbeat = models.DateTimeField()
    started_at = models.DateTimeField(auto_now_add=True)
    epochs_done = models.BigIntegerField(default=0)
    samples_per_second = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Bundle(models.Model):
    """The downloadable model bundle of one candidate, built by a Celery task.

    It stays valid while the candidate's checkpoint is the one it was built
    from (``checkpoint_sha256``); a new checkpoint makes it stale.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    BUSY_STATES = (State.QUEUED, State.RUNNING)

    candidate = models.OneToOneField(Candidate, on_delete=models.CASCADE, related_name="bundle")
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED, db_index=True)
    # Bumped by each (re)build request; a task only writes to the attempt it was started for.
    attempt = models.PositiveIntegerField(default=1)
    progress = models.PositiveSmallIntegerField(default=0)  # 0..100
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    checkpoint_sha256 = models.CharField(max_length=64)  # the candidate checkpoint it is built from
    worker = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    standalone_ok = models.BooleanField(null=True, blank=True)  # model.py rebuilds it with torch alone
    standalone_error = models.TextField(blank=True)
    onnx_ok = models.BooleanField(null=True, blank=True)
    onnx_error = models.TextField(blank=True)
    onnx_max_diff = models.FloatField(null=True, blank=True)
    float_size = models.BigIntegerField(null=True, blank=True)  # float TorchScript file
    float_accuracy = models.FloatField(null=True, blank=True)
    int8_size = models.BigIntegerField(null=True, blank=True)  # int8 dynamically quantised TorchScript file
    int8_accuracy = models.FloatField(null=True, blank=True)
    int8_error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"bundle of {self.candidate}"

    @property
    def is_current(self) -> bool:
        """Built from the candidate's present checkpoint (not stale)."""
        return self.checkpoint_sha256 == self.candidate.checkpoint_sha256

    @property
    def is_busy(self) -> bool:
        return self.state in self.BUSY_STATES


class ApiToken(models.Model):
    """A personal API token. Only a hash of the key is kept; the key is shown once."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)  # the key's first characters, to recognise it
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class Dataset(models.Model):
    """A data set a user uploaded: an image folder (from a zip) or a text table (CSV/JSONL).

    Its files live under ``DATA_DIR/uploads/<owner id>/<name>/`` once checked; a refused
    upload is kept as a failed row with the reason and no files. Only its owner sees it;
    searches name it ``upload:<id>`` (``catalog_name``).
    """

    class Kind(models.TextChoices):
        IMAGE_FOLDER = "image-folder"
        TEXT = "text"

    class State(models.TextChoices):
        READY = "ready"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    path = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(default=0)  # bytes on disk
    num_examples = models.PositiveIntegerField(default=0)
    num_classes = models.PositiveIntegerField(default=0)
    class_names = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.READY, db_index=True)
    message = models.TextField(blank=True)  # why it was refused, in words
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], condition=models.Q(state="ready"),
                                    name="dataset_unique_ready_name_per_owner"),
        ]

    def __str__(self):
        return f"{self.name} ({self.kind}, {self.state})"

    @property
    def catalog_name(self) -> str:
        """The name a search stores in ``Search.dataset``."""
        return f"upload:{self.pk}"

    def get_absolute_url(self):
        return reverse("dataset_detail", args=[self.pk])
