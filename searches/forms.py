"""The new-search form: every field with a default, checked before anything is written."""
from __future__ import annotations

from django import forms

from .datasets_catalog import DATASETS
from .nas import SPACES, STRATEGIES
from .services import LIMITS

PRESETS = {
    "quick": {"max_candidates": 8, "epochs": 5, "parallel": 2},
    "standard": {"max_candidates": 30, "epochs": 15, "parallel": 2},
    "thorough": {"max_candidates": 100, "epochs": 30, "parallel": 4},
}


def _dataset_choices():
    choices = []
    for info in DATASETS.values():
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
    objective = forms.ChoiceField(choices=[("val_accuracy", "Validation accuracy")], initial="val_accuracy")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**63 - 1,
                              help_text="Leave empty for a random seed.")
    batch_size = forms.IntegerField(initial=64, min_value=1, max_value=8192)
    lr = forms.FloatField(label="Learning rate", initial=3e-3, min_value=1e-6, max_value=10.0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = _dataset_choices()
        self.fields["space"].choices = [(n, cls.label or n) for n, cls in SPACES.items()]
        self.fields["strategy"].choices = [(n, cls.label or n) for n, cls in STRATEGIES.items()]

    def clean_dataset(self):
        name = self.cleaned_data["dataset"]
        ok, reason = DATASETS[name].availability()
        if not ok:
            raise forms.ValidationError(f"{DATASETS[name].label} is unavailable: {reason}")
        return name

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["parallel"] > data["max_candidates"]:
            self.add_error("parallel", "Cannot train more candidates at once than the search has.")
        return data

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {
            "name": d["name"], "dataset": d["dataset"], "space": d["space"], "strategy": d["strategy"],
            "max_candidates": d["max_candidates"], "epochs": d["epochs"], "parallel": d["parallel"],
            "objective": d["objective"], "seed": d["seed"],
            "train_settings": {"batch_size": d["batch_size"], "lr": d["lr"]},
        }
