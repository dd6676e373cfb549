"""The new-search form: every field with a default, checked before anything is written."""
from __future__ import annotations

from django import forms

from . import selectors
from .datasets_catalog import available_datasets, dataset_info
from .models import Search
from .nas import SPACES, STRATEGIES
from .nas.early_stopping import EARLY_STOPPING
from .services import LIMITS, ONE_SHOT

# Objective presets the form offers; the API takes any list of {"metric", "direction"}.
OBJECTIVES = {
    "val_accuracy": ("Validation accuracy", []),
    "accuracy_params": ("Accuracy and parameters (Pareto)",
                        [{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}]),
    "accuracy_flops": ("Accuracy and FLOPs (Pareto)",
                       [{"metric": "val_accuracy", "direction": "max"}, {"metric": "flops", "direction": "min"}]),
    "accuracy_latency": ("Accuracy and latency (Pareto)",
                         [{"metric": "val_accuracy", "direction": "max"}, {"metric": "latency_ms", "direction": "min"}]),
}

# What each preset is for, shown next to its button.
PRESET_HELP = {
    "quick": "8 candidates × 5 epochs: a few minutes on a CPU; checks that data set and space work.",
    "standard": "30 candidates × 15 epochs: a real first search; the best ones are worth keeping.",
    "thorough": "100 candidates × 30 epochs, 4 at once: for a GPU box with several workers; hours on a CPU.",
}

# The form shows these first; the rest sit under "Advanced settings".
BASIC_FIELDS = ("name", "dataset", "space", "strategy", "max_candidates", "epochs", "parallel", "objective")

PRESETS = {
    "quick": {"max_candidates": 8, "epochs": 5, "parallel": 2},
    "standard": {"max_candidates": 30, "epochs": 15, "parallel": 2},
    "thorough": {"max_candidates": 100, "epochs": 30, "parallel": 4},
}


def _dataset_choices(user=None):
    choices = []
    for info in available_datasets(owner=user):
        ok, reason = info.availability()
        choices.append((info.name, info.label if ok else f"{info.label} — unavailable: {reason}"))
    return choices


class SearchForm(forms.Form):
    name = forms.CharField(max_length=200, initial="My search")
    dataset = forms.ChoiceField(initial="digits")
    space = forms.ChoiceField(initial="chain", label="Search space")
    strategy = forms.ChoiceField(initial="random")
    max_candidates = forms.IntegerField(label="Candidates", initial=8,
                                        min_value=LIMITS["max_candidates"][0], max_value=LIMITS["max_candidates"][1])
    epochs = forms.IntegerField(label="Epochs per candidate", initial=5,
                                min_value=LIMITS["epochs"][0], max_value=LIMITS["epochs"][1])
    parallel = forms.IntegerField(label="Train at once", initial=2,
                                  min_value=LIMITS["parallel"][0], max_value=LIMITS["parallel"][1])
    objective = forms.ChoiceField(choices=[(k, v[0]) for k, v in OBJECTIVES.items()], initial="val_accuracy")
    latency_target_ms = forms.FloatField(
        label="Latency target (ms)", required=False, min_value=0.001,
        help_text="Optional: rank by the MnasNet reward acc × (latency/target)^-0.07 instead of accuracy.")
    early_stopping = forms.ChoiceField(initial="none")
    train_fraction = forms.FloatField(label="Fraction of training data (proxy)", initial=1.0,
                                      min_value=0.01, max_value=1.0)
    resolution = forms.IntegerField(label="Input resolution (proxy; 0 keeps the data set's)", initial=0,
                                    min_value=0, max_value=512)
    warm_start = forms.ModelChoiceField(queryset=Search.objects.none(), required=False,
                                        help_text="Seed the strategy with the results of an earlier search.")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**63 - 1,
                              help_text="Leave empty for a random seed.")
    batch_size = forms.IntegerField(initial=64, min_value=1, max_value=8192)
    lr = forms.FloatField(label="Learning rate", initial=3e-3, min_value=1e-6, max_value=10.0)
    deterministic = forms.BooleanField(
        label="Deterministic training", required=False, initial=False,
        help_text="The same seed gives the same numbers: seeded initialisation, data order and "
                  "augmentation, and torch's deterministic algorithms (slower on a GPU).")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["early_stopping"].choices = [(n, cls.label or n) for n, cls in EARLY_STOPPING.items()]
        if user is not None:
            self.fields["warm_start"].queryset = selectors.warm_start_choices(user)
        self._user = user  # uploads are offered to, and accepted from, their owner only
        self.fields["dataset"].choices = _dataset_choices(user)
        self.fields["space"].choices = [(n, cls.label or n) for n, cls in SPACES.items()]
        self.fields["strategy"].choices = ([(n, cls.label or n) for n, cls in STRATEGIES.items()]
                                           + list(ONE_SHOT.items()))

    def basic_fields(self):
        return [self[name] for name in self.fields if name in BASIC_FIELDS]

    def advanced_fields(self):
        return [self[name] for name in self.fields if name not in BASIC_FIELDS]

    def clean_dataset(self):
        name = self.cleaned_data["dataset"]
        info = dataset_info(name, owner=self._user)
        if info is None:
            raise forms.ValidationError(f"Unknown data set {name!r}.")
        ok, reason = info.availability()
        if not ok:
            raise forms.ValidationError(f"{info.label} is unavailable: {reason}")
        return name

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["parallel"] > data["max_candidates"]:
            self.add_error("parallel", "Cannot train more candidates at once than the search has.")
        if data.get("latency_target_ms") and data["objective"] != "val_accuracy":
            self.add_error("latency_target_ms", "A latency target goes with the single accuracy objective.")
        if data.get("warm_start") and data["warm_start"].space != data["space"]:
            self.add_error("warm_start", "Warm start from a search over the same search space.")
        return data

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {
            "name": d["name"], "dataset": d["dataset"], "space": d["space"], "strategy": d["strategy"],
            "max_candidates": d["max_candidates"], "epochs": d["epochs"], "parallel": d["parallel"],
            "objective": "val_accuracy", "seed": d["seed"],
            "objectives": self._objectives(d),
            "early_stopping": d["early_stopping"], "warm_start": d.get("warm_start"),
            "train_settings": {"batch_size": d["batch_size"], "lr": d["lr"],
                               "train_fraction": d["train_fraction"], "resolution": d["resolution"],
                               "deterministic": bool(d.get("deterministic"))},
        }

    @staticmethod
    def _objectives(d) -> list:
        if d.get("latency_target_ms"):
            return [{"reward": "mnasnet", "accuracy": "val_accuracy", "latency": "latency_ms",
                     "target": d["latency_target_ms"]}]
        return OBJECTIVES[d["objective"]][1]
